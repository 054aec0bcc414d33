//! Client authentication. Workload identities present a JWT as their
//! password; `jwt` verifies it against the issuer's JWKS.

pub mod jwt;
