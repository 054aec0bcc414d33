//! Content validators: does one sampled value look like a kind of sensitive
//! data? Each validator checks structure and, where the format has one, its
//! checksum (Luhn, mod-97, mod-11, mod-23), so that a column of random
//! numbers does not pass as card numbers or national identifiers.
//!
//! Written here rather than taken from a crate: the crates that exist each
//! cover one format (an IBAN crate, a Luhn crate) or detect in free text
//! with regular expressions and no checksums; a column-level classifier
//! needs all of them with the same strictness, and each is a few lines.

use base64::Engine as _;

/// A kind of sensitive value a validator recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A payment card number: 12–19 digits, Luhn, a known issuer range.
    PaymentCard,
    /// An IBAN: country, check digits that pass mod-97, the country's length.
    Iban,
    /// An e-mail address.
    Email,
    /// A phone number written as one: `+` and digits, or digit groups with
    /// separators.
    Phone,
    /// A US social security number `AAA-GG-SSSS` outside the never-issued
    /// ranges.
    UsSsn,
    /// A national identifier with a check digit: UK National Insurance
    /// number, Canadian SIN, Dutch BSN, Spanish DNI/NIE, French NIR.
    NationalId,
    /// An IPv4 or IPv6 address (optionally with a prefix length).
    IpAddress,
    /// A JSON Web Token whose header decodes and names an algorithm.
    Jwt,
    /// A password hash in a self-describing format (bcrypt, argon2, crypt's
    /// `$1$`/`$5$`/`$6$`, PBKDF2, SCRAM, LDAP `{SSHA}`).
    PasswordHash,
    /// A bare hex digest of 32, 40, 64 or 128 digits: a password or token
    /// digest, or a checksum.
    HexDigest,
    /// A long high-entropy token (API keys, session tokens, secrets).
    Token,
}

impl Kind {
    /// Every kind, in the order reports list them.
    /// A value several kinds accept (a Canadian SIN is also written like a
    /// phone number) counts for the earlier one.
    pub const ALL: [Kind; 11] = [
        Kind::PaymentCard,
        Kind::Iban,
        Kind::UsSsn,
        Kind::NationalId,
        Kind::Email,
        Kind::IpAddress,
        Kind::Phone,
        Kind::Jwt,
        Kind::PasswordHash,
        Kind::HexDigest,
        Kind::Token,
    ];

    /// What a value of this kind is, for evidence comments ("pass Luhn …").
    pub fn evidence(self) -> &'static str {
        match self {
            Kind::PaymentCard => "are card numbers (Luhn and issuer range)",
            Kind::Iban => "are IBANs (mod-97)",
            Kind::Email => "are e-mail addresses",
            Kind::Phone => "are phone numbers",
            Kind::UsSsn => "are US social security numbers",
            Kind::NationalId => "are national identifiers (check digit)",
            Kind::IpAddress => "are IP addresses",
            Kind::Jwt => "are JSON Web Tokens",
            Kind::PasswordHash => "are password hashes",
            Kind::HexDigest => "are hex digests (password or token digests, or checksums)",
            Kind::Token => "are high-entropy tokens",
        }
    }

    /// Whether `value` is of this kind.
    pub fn matches(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            Kind::PaymentCard => is_payment_card(v),
            Kind::Iban => is_iban(v),
            Kind::Email => is_email(v),
            Kind::Phone => is_phone(v),
            Kind::UsSsn => is_us_ssn(v),
            Kind::NationalId => is_national_id(v),
            Kind::IpAddress => is_ip_address(v),
            Kind::Jwt => is_jwt(v),
            Kind::PasswordHash => is_password_hash(v),
            Kind::HexDigest => is_hex_digest(v),
            Kind::Token => is_token(v),
        }
    }
}

/// The digits of `v` when it is digits with optional single spaces or
/// hyphens between groups; `None` for anything else.
fn digits_with_separators(v: &str) -> Option<Vec<u8>> {
    let mut digits = Vec::with_capacity(v.len());
    let mut last_sep = true;
    for b in v.bytes() {
        match b {
            b'0'..=b'9' => {
                digits.push(b - b'0');
                last_sep = false;
            }
            b' ' | b'-' if !last_sep => last_sep = true,
            _ => return None,
        }
    }
    (!last_sep).then_some(digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits
        .iter()
        .take(n)
        .fold(0, |acc, &d| acc * 10 + u32::from(d))
}

/// The issuer ranges of the major networks (ISO/IEC 7812 IINs as the
/// networks publish them) with their card lengths.
fn known_issuer(d: &[u8]) -> bool {
    let len = d.len();
    let p1 = prefix(d, 1);
    let p2 = prefix(d, 2);
    let p3 = prefix(d, 3);
    let p4 = prefix(d, 4);
    let p6 = prefix(d, 6);
    match () {
        // Visa
        _ if p1 == 4 => matches!(len, 13 | 16 | 19),
        // Mastercard: 51–55 and 2221–2720
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16,
        // American Express
        _ if p2 == 34 || p2 == 37 => len == 15,
        // Discover
        _ if p4 == 6011
            || p2 == 65
            || (644..=649).contains(&p3)
            || (622126..=622925).contains(&p6) =>
        {
            (16..=19).contains(&len)
        }
        // JCB
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        // Diners Club
        _ if p2 == 36 || p2 == 38 || (300..=305).contains(&p3) => (14..=19).contains(&len),
        // UnionPay
        _ if p2 == 62 => (16..=19).contains(&len),
        // Maestro
        _ if matches!(
            p4,
            5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
        ) =>
        {
            (12..=19).contains(&len)
        }
        _ => false,
    }
}

fn is_payment_card(v: &str) -> bool {
    match digits_with_separators(v) {
        Some(d) => (12..=19).contains(&d.len()) && known_issuer(&d) && luhn(&d),
        None => false,
    }
}

/// IBAN lengths of the SEPA countries and a few others (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        _ => return None,
    })
}

fn is_iban(v: &str) -> bool {
    let compact: String = v.chars().filter(|c| *c != ' ').collect();
    if compact.len() < 15 || compact.len() > 34 || !compact.is_ascii() {
        return false;
    }
    let (country, rest) = compact.split_at(2);
    if !country.bytes().all(|b| b.is_ascii_uppercase())
        || !rest[..2].bytes().all(|b| b.is_ascii_digit())
        || !rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        || iban_length(country) != Some(compact.len())
    {
        return false;
    }
    // Move the first four characters to the end, letters to 10..35, mod 97.
    let rearranged = compact[4..].bytes().chain(compact[..4].bytes());
    let mut rem: u32 = 0;
    for b in rearranged {
        let n = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if n >= 10 {
            (rem * 100 + n) % 97
        } else {
            (rem * 10 + n) % 97
        };
    }
    rem == 1
}

fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// `+` and 8–15 digits, or 7–15 digits in at least two groups separated by
/// spaces, hyphens, dots or parentheses. A bare run of digits is not taken
/// for a phone number: it is as likely an order number.
fn is_phone(v: &str) -> bool {
    let mut digits = 0;
    let mut groups = 0;
    let mut in_group = false;
    for (i, c) in v.chars().enumerate() {
        match c {
            '0'..='9' => {
                digits += 1;
                if !in_group {
                    groups += 1;
                    in_group = true;
                }
            }
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' => in_group = false,
            _ => return false,
        }
    }
    if v.starts_with('+') {
        (8..=15).contains(&digits)
    } else {
        (7..=15).contains(&digits) && groups >= 2 && !looks_like_date_or_version(v)
    }
}

/// `2024-01-31`, `1.2.3`: digit groups that are not phone numbers.
fn looks_like_date_or_version(v: &str) -> bool {
    let groups: Vec<&str> = v.split(['-', '.', ' ']).collect();
    (groups.len() == 3 && groups[0].len() == 4 && groups[1].len() <= 2 && groups[2].len() <= 2)
        || groups.iter().all(|g| g.len() <= 3) && v.contains('.')
}

/// `AAA-GG-SSSS` (or with spaces): area not 000, 666 or 900–999, group not
/// 00, serial not 0000 (the never-issued ranges of the SSA).
fn is_us_ssn(v: &str) -> bool {
    let parts: Vec<&str> = v.split(['-', ' ']).collect();
    if parts.len() != 3
        || parts[0].len() != 3
        || parts[1].len() != 2
        || parts[2].len() != 4
        || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let area: u32 = parts[0].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && parts[1] != "00" && parts[2] != "0000"
}

fn is_national_id(v: &str) -> bool {
    is_uk_nino(v) || is_canadian_sin(v) || is_dutch_bsn(v) || is_spanish_dni(v) || is_french_nir(v)
}

/// UK National Insurance number: two letters (not D, F, I, Q, U, V; the
/// second not O; not the unused pairs), six digits, a suffix A–D.
fn is_uk_nino(v: &str) -> bool {
    let s: String = v.chars().filter(|c| *c != ' ').collect();
    let b = s.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let bad = |c: u8| b"DFIQUV".contains(&c);
    b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && !bad(b[0])
        && !bad(b[1])
        && b[1] != b'O'
        && !matches!(&s[..2], "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ")
        && b[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&b[8])
}

/// Canadian social insurance number: `NNN NNN NNN` or `NNN-NNN-NNN`, Luhn,
/// not starting with 0 or 8. Only the grouped form: nine bare digits are as
/// likely an internal number that happens to pass Luhn.
fn is_canadian_sin(v: &str) -> bool {
    let groups: Vec<&str> = v.split([' ', '-']).collect();
    if groups.len() != 3 || groups.iter().any(|g| g.len() != 3) {
        return false;
    }
    match digits_with_separators(v) {
        Some(d) => d.len() == 9 && d[0] != 0 && d[0] != 8 && luhn(&d),
        None => false,
    }
}

/// Dutch citizen service number: nine digits passing the "11-proof"
/// (weights 9…2 and −1).
fn is_dutch_bsn(v: &str) -> bool {
    if v.len() != 9 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return false;
    }
    let d: Vec<i32> = v.bytes().map(|b| i32::from(b - b'0')).collect();
    let sum: i32 = (0..8).map(|i| d[i] * (9 - i as i32)).sum::<i32>() - d[8];
    sum % 11 == 0 && sum != 0
}

/// Spanish DNI (eight digits and a letter) or NIE (X/Y/Z, seven digits, a
/// letter): the letter is the number mod 23.
fn is_spanish_dni(v: &str) -> bool {
    const LETTERS: &[u8] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s = v.replace('-', "");
    let b = s.as_bytes();
    if b.len() != 9 || !b[8].is_ascii_uppercase() {
        return false;
    }
    let lead = match b[0] {
        b'X' => Some(0),
        b'Y' => Some(1),
        b'Z' => Some(2),
        c if c.is_ascii_digit() => None,
        _ => return false,
    };
    if !b[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let digits = match lead {
        Some(n) => format!("{n}{}", &s[1..8]),
        None => s[..8].to_owned(),
    };
    let Ok(n) = digits.parse::<u32>() else {
        return false;
    };
    LETTERS[(n % 23) as usize] == b[8]
}

/// French social security number (NIR): sex 1 or 2, year, month 01–12 (or
/// 20–42, 50+ for special cases), 13 digits and a two-digit key
/// 97 − (number mod 97). Corsica's 2A/2B departments count as 19/18.
fn is_french_nir(v: &str) -> bool {
    let s: String = v.chars().filter(|c| *c != ' ').collect();
    if s.len() != 15 || !s.is_ascii() {
        return false;
    }
    let body = s[..13].replace("2A", "19").replace("2B", "18");
    if body.len() != 13
        || !body.bytes().all(|b| b.is_ascii_digit())
        || !s[13..].bytes().all(|b| b.is_ascii_digit())
        || !matches!(&body[..1], "1" | "2")
    {
        return false;
    }
    let month: u32 = body[3..5].parse().unwrap_or(0);
    if !((1..=12).contains(&month) || (20..=42).contains(&month) || (50..=99).contains(&month)) {
        return false;
    }
    let (Ok(n), Ok(key)) = (body.parse::<u64>(), s[13..].parse::<u64>()) else {
        return false;
    };
    97 - n % 97 == key
}

fn is_ip_address(v: &str) -> bool {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= max))
}

fn is_jwt(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3 || parts[0].is_empty() || parts[1].is_empty() {
        return false;
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(header) = engine.decode(parts[0].trim_end_matches('=')) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h.get("alg").map(serde_json::Value::is_string))
        .unwrap_or(false)
}

fn is_password_hash(v: &str) -> bool {
    let b64ish = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"./+=".contains(&b))
    };
    if let Some(rest) = v
        .strip_prefix("$2a$")
        .or_else(|| v.strip_prefix("$2b$"))
        .or_else(|| v.strip_prefix("$2y$"))
        .or_else(|| v.strip_prefix("$2x$"))
    {
        // bcrypt: two-digit cost, `$`, 53 characters of salt and hash.
        return rest.len() == 56
            && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[2] == b'$'
            && b64ish(&rest[3..]);
    }
    if v.starts_with("$argon2id$") || v.starts_with("$argon2i$") || v.starts_with("$argon2d$") {
        return v.split('$').count() >= 5 && v.rsplit('$').next().is_some_and(b64ish);
    }
    for scheme in ["$1$", "$5$", "$6$", "$y$", "$sha1$"] {
        if let Some(rest) = v.strip_prefix(scheme) {
            let fields: Vec<&str> = rest.split('$').collect();
            return fields.len() >= 2 && fields.last().is_some_and(|h| h.len() >= 20 && b64ish(h));
        }
    }
    for scheme in [
        "pbkdf2_sha256$",
        "pbkdf2_sha1$",
        "argon2$",
        "bcrypt_sha256$",
        "scrypt$",
    ] {
        if let Some(rest) = v.strip_prefix(scheme) {
            return rest.split('$').count() >= 2 && rest.len() >= 20;
        }
    }
    if let Some(rest) = v.strip_prefix("SCRAM-SHA-256$") {
        // `iterations:salt$StoredKey:ServerKey`
        return rest.split_once('$').is_some_and(|(params, keys)| {
            params
                .split_once(':')
                .is_some_and(|(n, salt)| n.parse::<u32>().is_ok() && b64ish(salt))
                && keys
                    .split_once(':')
                    .is_some_and(|(a, b)| b64ish(a) && b64ish(b))
        });
    }
    if let Some(rest) = v.strip_prefix("md5") {
        // PostgreSQL's own md5 password format.
        return rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    }
    ["{SSHA}", "{SHA}", "{SSHA256}", "{SSHA512}", "{CRYPT}"]
        .iter()
        .any(|p| v.strip_prefix(p).is_some_and(|r| r.len() >= 20))
}

fn is_hex_digest(v: &str) -> bool {
    matches!(v.len(), 32 | 40 | 64 | 128)
        && v.bytes().all(|b| b.is_ascii_hexdigit())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit())
}

/// Shannon entropy of the bytes, in bits per byte.
fn entropy(v: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// At least 20 characters of a token alphabet, no spaces, mixing letters
/// and digits, and at least 3.5 bits of entropy per character. UUIDs are
/// identifiers, not secrets, and are left out.
fn is_token(v: &str) -> bool {
    (20..=512).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.~:".contains(&b))
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && !is_uuid(v)
        && !v.contains("://")
        && entropy(v) >= 3.5
}

fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::Kind;

    fn yes(kind: Kind, values: &[&str]) {
        for v in values {
            assert!(kind.matches(v), "{kind:?} should accept {v:?}");
        }
    }

    fn no(kind: Kind, values: &[&str]) {
        for v in values {
            assert!(!kind.matches(v), "{kind:?} should refuse {v:?}");
        }
    }

    #[test]
    fn payment_cards_need_luhn_and_an_issuer_range() {
        yes(
            Kind::PaymentCard,
            &[
                "4111111111111111",
                "4111 1111 1111 1111",
                "5555-5555-5555-4444",
                "2223003122003222",
                "378282246310005",
                "6011111111111117",
                "3530111333300000",
                "30569309025904",
            ],
        );
        no(
            Kind::PaymentCard,
            &[
                "4111111111111112",    // Luhn fails
                "1234567812345670",    // passes Luhn, no issuer starts with 1
                "411111111111111",     // Visa with 15 digits
                "4111--1111111111111", // doubled separator
                "SO43659",
                "",
            ],
        );
    }

    #[test]
    fn ibans_need_their_country_length_and_mod_97() {
        yes(
            Kind::Iban,
            &[
                "DE89370400440532013000",
                "GB82 WEST 1234 5698 7654 32",
                "FR1420041010050500013M02606",
                "NL91ABNA0417164300",
            ],
        );
        no(
            Kind::Iban,
            &[
                "DE89370400440532013001",
                "XX89370400440532013000",
                "DE8937040044053201300",
            ],
        );
    }

    #[test]
    fn e_mail_addresses() {
        yes(
            Kind::Email,
            &[
                "mary.smith@sakilacustomer.org",
                "a+b@x.example.com",
                "luisg@embraer.com.br",
            ],
        );
        no(
            Kind::Email,
            &["mary", "a@b", "a@@b.com", "a@b.c0m", "a b@c.com", "@x.com"],
        );
    }

    #[test]
    fn phone_numbers_are_written_as_phone_numbers() {
        yes(
            Kind::Phone,
            &[
                "+55 (12) 3923-5555",
                "+1 (780) 428-9482",
                "+4930123456",
                "555-123-4567",
                "020 7946 0958",
            ],
        );
        no(
            Kind::Phone,
            &[
                "14033335568",
                "2024-01-31",
                "1.2.3",
                "+12",
                "call me",
                "SO-43659",
            ],
        );
    }

    #[test]
    fn social_security_numbers_outside_the_never_issued_ranges() {
        yes(Kind::UsSsn, &["078-05-1120", "123 45 6789"]);
        no(
            Kind::UsSsn,
            &[
                "000-12-3456",
                "666-12-3456",
                "912-12-3456",
                "123-00-4567",
                "123-45-0000",
                "123456789",
            ],
        );
    }

    #[test]
    fn national_identifiers_with_check_digits() {
        yes(
            Kind::NationalId,
            &[
                "AB123456C",   // UK NINO
                "130 692 544", // Canadian SIN
                "111222333",   // Dutch BSN
                "12345678Z",   // Spanish DNI
                "X1234567L",   // Spanish NIE
            ],
        );
        // French NIR: 1 85 05 78 006 084, key 97 - n mod 97.
        let body = 1_850_578_006_084u64;
        let nir = format!("{body}{:02}", 97 - body % 97);
        yes(Kind::NationalId, &[&nir]);
        no(
            Kind::NationalId,
            &[
                "DA123456C",
                "130 692 545",
                "046 454 286",
                "111222334",
                "12345678A",
                "123456789",
                &nir.replace('8', "9"),
            ],
        );
    }

    #[test]
    fn ip_addresses() {
        yes(
            Kind::IpAddress,
            &["192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::1/64"],
        );
        no(
            Kind::IpAddress,
            &["192.168.0.256", "10.0.0.0/33", "1.2.3", "localhost"],
        );
    }

    #[test]
    fn jwts_have_a_header_naming_an_algorithm() {
        yes(
            Kind::Jwt,
            &["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"],
        );
        no(
            Kind::Jwt,
            &["a.b.c", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", "1.2.3"],
        );
    }

    #[test]
    fn password_hashes_by_format() {
        yes(
            Kind::PasswordHash,
            &[
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
                "$6$rounds=5000$saltsalt$Xm6dHPqvWj0zgMRDyNkBhAxB0aIqE4SfFqVZBkzSvUe",
                "pbkdf2_sha256$260000$salt$hashhashhashhash",
                "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVkS2V5:c2VydmVyS2V5",
                "md5a3556571e93b0d20722ba62be61e8c2d",
            ],
        );
        no(
            Kind::PasswordHash,
            &["$2b$12$short", "hunter2", "md5", "$6$x"],
        );
    }

    #[test]
    fn hex_digests_and_tokens() {
        yes(
            Kind::HexDigest,
            &["8cb2237d0679ca88db6464eac60da96345513964"],
        );
        no(
            Kind::HexDigest,
            &[
                "8cb2237d0679ca88db6464eac60da9634551396",
                "1234567890123456789012345678901234567890",
            ],
        );
        yes(
            Kind::Token,
            &[
                "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            ],
        );
        no(
            Kind::Token,
            &[
                "550e8400-e29b-41d4-a716-446655440000",
                "aaaaaaaaaaaaaaaaaaaaaaaa1",
                "The quick brown fox jumps",
                "short1",
                "https://example.com/p/17",
            ],
        );
    }
}
