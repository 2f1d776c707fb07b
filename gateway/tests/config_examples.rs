//! Every configuration file shipped in the repository's `config/` directory parses and validates,
//! so the examples cannot rot.

use holdline_gateway::Config;
use std::path::Path;

#[test]
fn every_file_in_config_dir_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        if let Err(error) = Config::load(&path) {
            panic!("{}: {error}", path.display());
        }
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        checked.iter().any(|name| name == "quickstart.toml"),
        "config/quickstart.toml was not found among {checked:?}"
    );
}
