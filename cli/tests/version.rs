//! `tessera --version` names the release and the commit the binary was built from, so an
//! operator can tell which build a pod runs.

use std::process::Command;

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let release = concat!("tessera ", env!("CARGO_PKG_VERSION"), " (commit ");
    assert!(text.starts_with(release), "{text}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(h) if h.status.success() && std::env::var_os("TESSERA_COMMIT").is_none() => {
            let head = String::from_utf8(h.stdout).unwrap();
            assert_eq!(text.trim(), format!("{release}{})", head.trim()));
        }
        _ => eprintln!("no git checkout here: the commit itself is not compared"),
    }
}
