//! Policy bundles published through the control plane's database:
//! `clsfc publish` stores a built (and signed) bundle here and notifies;
//! replicas `LISTEN`, fetch what is newer than the bundle they run, check it
//! against the keys they trust and install it. The database only carries
//! the files: trust comes from the signature the replicas verify, never
//! from where the bundle was found.

use tokio_postgres::Client;

/// The notification channel a publication is announced on (its payload is
/// the version).
pub const CHANNEL: &str = "clsf_bundles";

/// The table, created by whichever side comes first.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS clsf_bundles (
    version bigint PRIMARY KEY CHECK (version >= 0),
    files jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
)";

/// A published bundle: its version and its files as (name, content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The bundle's version (its manifest's `bundle_version`).
    pub version: u64,
    /// Its files.
    pub files: Vec<(String, String)>,
}

/// Why a bundle could not be published or fetched.
#[derive(Debug, thiserror::Error)]
pub enum BundlesError {
    /// The database refused a statement (its message, never a password).
    #[error("control plane: {0}")]
    Database(String),
    /// A bundle with this version or a newer one is already published.
    #[error(
        "control plane: version {newest} is already published; build with a higher --bundle-version than {newest} (this one is {version})"
    )]
    NotNewer {
        /// The version offered.
        version: u64,
        /// The newest version published.
        newest: u64,
    },
    /// A stored row is not a set of files.
    #[error("control plane: bundle version {0} is not stored as a set of files")]
    Unreadable(i64),
}

fn database(e: tokio_postgres::Error) -> BundlesError {
    BundlesError::Database(
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    )
}

/// Stores `files` as bundle `version` and notifies the replicas, in one
/// transaction; refused unless newer than every bundle published before.
pub async fn publish(
    client: &mut Client,
    version: u64,
    files: &[(String, String)],
) -> Result<(), BundlesError> {
    client.batch_execute(SCHEMA).await.map_err(database)?;
    let object: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(name, content)| (name.clone(), serde_json::Value::String(content.clone())))
        .collect();
    let text = serde_json::Value::Object(object).to_string();
    let signed = i64::try_from(version).map_err(|_| BundlesError::NotNewer {
        version,
        newest: i64::MAX as u64,
    })?;
    let tx = client.transaction().await.map_err(database)?;
    // Publications are serialised, so the check below sees every earlier one.
    tx.batch_execute("LOCK TABLE clsf_bundles IN EXCLUSIVE MODE")
        .await
        .map_err(database)?;
    let newest: Option<i64> = tx
        .query_one("SELECT max(version) FROM clsf_bundles", &[])
        .await
        .map_err(database)?
        .get(0);
    if let Some(newest) = newest
        && newest >= signed
    {
        return Err(BundlesError::NotNewer {
            version,
            newest: newest as u64,
        });
    }
    tx.execute(
        "INSERT INTO clsf_bundles (version, files) VALUES ($1, $2::text::jsonb)",
        &[&signed, &text],
    )
    .await
    .map_err(database)?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &version.to_string()],
    )
    .await
    .map_err(database)?;
    tx.commit().await.map_err(database)
}

/// The newest bundle published with a version above `than`, if any.
pub async fn newer(client: &Client, than: u64) -> Result<Option<Published>, BundlesError> {
    let than = i64::try_from(than).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "SELECT version, files::text FROM clsf_bundles WHERE version > $1 ORDER BY version DESC LIMIT 1",
            &[&than],
        )
        .await
        .map_err(database)?;
    let Some(row) = row else { return Ok(None) };
    let version: i64 = row.get(0);
    let text: String = row.get(1);
    let files = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(name, content)| match content {
                serde_json::Value::String(c) => Ok((name, c)),
                _ => Err(BundlesError::Unreadable(version)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(BundlesError::Unreadable(version)),
    };
    Ok(Some(Published {
        version: version as u64,
        files,
    }))
}
