//! A client certificate as an identity: after rustls verified its chain
//! against the configured client CA, its subject and subject alternative
//! names are what `certificate subject|san` groups match.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::Proven;

/// Why a verified client certificate makes no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Its DER does not decode as an X.509 certificate.
    #[error("the client certificate cannot be decoded")]
    Undecodable,
    /// It has neither a subject nor a subject alternative name.
    #[error("the client certificate names no subject")]
    Nameless,
}

/// The identity of a verified client certificate (DER), or why it has none.
pub fn identity(der: &[u8]) -> Result<Proven, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertError::Undecodable)?;
    let subject = cert.subject().to_string();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => {
                    sans.push((*n).to_owned())
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .map(std::net::IpAddr::from)
                            .ok(),
                        _ => None,
                    };
                    sans.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    if subject.is_empty() && sans.is_empty() {
        return Err(CertError::Nameless);
    }
    Ok(Proven::Certificate { subject, sans })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_no_certificate_make_no_identity() {
        assert_eq!(identity(b"not DER").unwrap_err(), CertError::Undecodable);
    }
}
