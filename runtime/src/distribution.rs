//! Policy bundles from the control plane (`[control_plane] follow_bundles`):
//! a replica `LISTEN`s for `clsfc publish`, fetches each bundle newer than
//! the one it runs, checks it in a staging folder exactly as a bundle on
//! disk is checked at start (signature by a trusted key, digests, Cedar
//! against the plan, no downgrade), and only then writes it over its
//! bundle folder and puts it in force. The folder therefore always holds
//! the last bundle this replica verified: a replica that starts while the
//! control plane is down runs it.
//!
//! A bundle that fails a check is refused: the plan in force stays, the
//! refusal is logged, audited (`bundle_refused`) and counted
//! (`clsf_bundles_refused`), and the same version is not tried again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clsf_catalog::bundles::{self, Published};

use crate::audit::Event;
use crate::config::Config;
use crate::session::Shared;

/// How long a replica waits for a notification before it asks anyway (a
/// notification sent while it was reconnecting is not replayed).
const POLL: Duration = Duration::from_secs(5);

/// How long it waits before connecting again after the control plane
/// went away.
const RETRY: Duration = Duration::from_secs(1);

/// Why following the control plane stopped (it is tried again).
#[derive(Debug, thiserror::Error)]
enum Lost {
    /// It could not be reached or logged into.
    #[error("{0}")]
    Connect(#[from] clsf_catalog::PullError),
    /// A statement failed.
    #[error("{0}")]
    Database(#[from] tokio_postgres::Error),
    /// The table could not be read.
    #[error("{0}")]
    Bundles(#[from] bundles::BundlesError),
    /// The connection ended.
    #[error("the connection closed")]
    Closed,
}

/// Why a published bundle was not put in force.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// A file name that is not one of the bundle's.
    #[error("it carries a file `{0}` that its manifest does not list")]
    Name(String),
    /// No manifest, or one that does not decode.
    #[error("its manifest does not decode: {0}")]
    Manifest(String),
    /// The checks a bundle on disk gets failed.
    #[error("{0}")]
    Bundle(#[from] clsf_compiler::bundle::BundleError),
    /// The staging or bundle folder could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Follows the control plane at `url` for as long as the proxy runs.
pub async fn follow(shared: Arc<Shared>, config: Config, url: String, password: Option<String>) {
    let mut refused: HashSet<u64> = HashSet::new();
    let mut unreachable = false;
    loop {
        match listen(&shared, &config, &url, password.as_deref(), &mut refused).await {
            Ok(()) => {}
            Err(e) if !unreachable => {
                tracing::warn!(error = %e, "control plane: cannot follow published bundles; the plan in force stays");
                unreachable = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(RETRY).await;
        if unreachable {
            tracing::debug!("control plane: connecting again to follow bundles");
        }
    }
}

/// One session with the control plane: `LISTEN`, then check for a newer
/// bundle at once and on every notification (or every [`POLL`]).
async fn listen(
    shared: &Shared,
    config: &Config,
    url: &str,
    password: Option<&str>,
    refused: &mut HashSet<u64>,
) -> Result<(), Lost> {
    let (client, mut notifications) =
        clsf_catalog::connect::connect_listening(url, password).await?;
    client
        .batch_execute(&format!("{}; LISTEN {}", bundles::SCHEMA, bundles::CHANNEL))
        .await?;
    tracing::info!("control plane: following published bundles");
    loop {
        let in_force = shared.current().bundle_version.unwrap_or(0);
        if let Some(published) = bundles::newer(&client, in_force).await? {
            shared
                .metrics
                .bundle_published
                .set(i64::try_from(published.version).unwrap_or(i64::MAX));
            if !refused.contains(&published.version)
                && let Err(refusal) = install(shared, config, &published)
            {
                refused.insert(published.version);
                refuse(shared, published.version, &refusal);
            }
        }
        match tokio::time::timeout(POLL, notifications.recv()).await {
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => return Err(Lost::Closed),
        }
    }
}

fn refuse(shared: &Shared, version: u64, refusal: &Refusal) {
    shared.metrics.bundles_refused.inc();
    let reason = format!("bundle version {version} from the control plane: {refusal}");
    let mut event = Event::new("bundle_refused", 0);
    event.reason = Some(&reason);
    let _ = shared.audit.append(&event);
    tracing::error!(version, "{reason}; the plan in force stays");
}

/// Checks `published` in a staging folder beside the bundle folder, then
/// writes it over the bundle folder and reloads.
fn install(shared: &Shared, config: &Config, published: &Published) -> Result<(), Refusal> {
    let Some(bundle) = config.policy.bundle.as_deref() else {
        // `config::load` requires a bundle for follow_bundles.
        return Ok(());
    };
    let manifest = published
        .files
        .iter()
        .find(|(name, _)| name == "manifest.json")
        .map(|(_, text)| text.as_str())
        .ok_or_else(|| Refusal::Manifest("there is no manifest.json".to_owned()))?;
    let listed = clsf_compiler::bundle::listed_files(manifest)
        .map_err(|e| Refusal::Manifest(e.to_string()))?;
    for (name, _) in &published.files {
        let allowed = name == "manifest.json"
            || name == clsf_compiler::signing::SIGNATURE_FILE
            || listed.iter().any(|l| l == name);
        if !allowed || !plain_name(name) {
            return Err(Refusal::Name(name.clone()));
        }
    }
    let staging = sibling(bundle, "incoming");
    let _ = std::fs::remove_dir_all(&staging);
    write_all(&staging, &published.files)?;
    let trust = clsf_compiler::bundle::Trust {
        keys: config.policy.keys(),
        in_force: shared.current().bundle_version,
        allow_downgrade: false,
    };
    let checked = clsf_compiler::bundle::load_with(&staging, &trust);
    let _ = std::fs::remove_dir_all(&staging);
    let checked = checked?;
    let key = checked.signed_by.clone().unwrap_or_default();
    // Verified: it replaces the bundle on disk, data files first and the
    // manifest and signature last, each by a rename.
    let mut ordered: Vec<&(String, String)> = published.files.iter().collect();
    ordered.sort_by_key(|(name, _)| {
        (
            name == "manifest.json" || name == clsf_compiler::signing::SIGNATURE_FILE,
            name.clone(),
        )
    });
    for (name, content) in ordered {
        let target = bundle.join(name);
        let temporary = bundle.join(format!(".{name}.incoming"));
        std::fs::write(&temporary, content).map_err(io(&temporary))?;
        std::fs::rename(&temporary, &target).map_err(io(&target))?;
    }
    tracing::info!(
        version = published.version,
        key = %key,
        "control plane: bundle verified and installed"
    );
    // In force from the engine just verified (what is on disk now), not
    // compiled a second time.
    let generation = shared.current().generation + 1;
    crate::reload::put_in_force(
        shared,
        crate::start::loaded_from(config, checked.engine, generation, Some(checked.version)),
    );
    Ok(())
}

/// A file name with no folder part and nothing hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `PARENT/.NAME.suffix` for `PARENT/NAME`: beside the bundle folder, not
/// inside the watched tree.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".to_owned());
    dir.with_file_name(format!(".{name}.{suffix}"))
}

fn write_all(dir: &Path, files: &[(String, String)]) -> Result<(), Refusal> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Refusal + '_ {
    move |source| Refusal::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_written() {
        for ok in [
            "manifest.json",
            "engine-plan.json",
            "policies.cedar",
            "manifest.sig",
        ] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "/etc/passwd", "a\\b", "x\0y"] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert_eq!(
            sibling(Path::new("/srv/clsf/bundle"), "incoming"),
            PathBuf::from("/srv/clsf/.bundle.incoming")
        );
    }
}
