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

/// Connects through `config` as soon as the proxy takes the session,
/// trying again for up to `limit` (after a restart, or while a slot frees
/// up); panics with the last error past it. The connection runs on the
/// current runtime.
pub async fn connect_within(
    config: &tokio_postgres::Config,
    limit: std::time::Duration,
) -> tokio_postgres::Client {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no session: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
