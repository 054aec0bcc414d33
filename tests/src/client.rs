//! tokio-postgres connections through the proxy.

use std::time::Duration;

use crate::postgres::DATABASE;

/// A tokio-postgres config for the proxy on loopback `port`, authenticating
/// with `token` as the password.
pub fn config(port: u16, user: &str, token: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname(DATABASE)
        .password(token)
        .connect_timeout(Duration::from_secs(10));
    cfg
}
