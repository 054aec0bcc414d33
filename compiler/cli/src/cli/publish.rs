//! `clsfc publish`: a built bundle into the control plane's database, for
//! the replicas that follow it.

use std::path::Path;

use super::Exit;

/// Reads the bundle at `dir` (checked as a proxy checks any bundle),
/// stores it and notifies the replicas.
pub(super) fn run(dir: &Path, url: &str, password_file: Option<&Path>) -> Result<Exit, String> {
    let (version, files) =
        clsf_compiler::bundle::read_for_publication(dir).map_err(|e| e.to_string())?;
    if !files
        .iter()
        .any(|(name, _)| name == clsf_compiler::signing::SIGNATURE_FILE)
    {
        eprintln!(
            "warning: {} is not signed; replicas that trust keys will refuse it (build it with --sign)",
            dir.display()
        );
    }
    let password = password_file
        .map(|p| {
            clsf_catalog::connect::password_from_file(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut client = clsf_catalog::connect::connect_with(url, password.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        clsf_catalog::bundles::publish(&mut client, version, &files)
            .await
            .map_err(|e| e.to_string())
    })?;
    eprintln!(
        "ok: published bundle version {version} ({} files) to the control plane",
        files.len()
    );
    Ok(Exit::Ok)
}
