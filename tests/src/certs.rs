//! A throwaway certificate authority for TLS tests.

use std::path::Path;

/// Writes `ca.pem` (a test CA), `server.pem` and `server.key` (a server
/// certificate for `localhost` and 127.0.0.1 signed by it) into `dir`.
pub fn write_test_ca(dir: &Path) {
    write_test_ca_for(dir, &["localhost", "127.0.0.1"]);
}

/// Like [`write_test_ca`], with the server certificate's names given (an
/// IP address becomes an IP subject alternative name).
pub fn write_test_ca_for(dir: &Path, names: &[&str]) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "clsf test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("server params");
    for name in names {
        params
            .subject_alt_names
            .push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName((*name).try_into().expect("a DNS name")),
            });
    }
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write server.key");
}

/// Writes `{name}-ca.pem` (a fresh client CA) and `{name}.pem` /
/// `{name}.key` (a client certificate it signed, with common name `cn` and
/// the DNS subject alternative name `san`) into `dir`; the key is readable
/// by its owner only, as libpq requires.
pub fn write_client_cert(dir: &Path, name: &str, cn: &str, san: &str) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} client CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("client key");
    let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).expect("client params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca).expect("client certificate");
    std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).expect("write CA");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}
