//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) caught, fed to the same functions.

use berth_client::reference::{MAX_LEN, Reference, normalize};

/// `reference` target: a name that fits the limit but whose normalized form
/// (`docker.io/library/…:latest`) does not was accepted, and its normalized form then
/// refused. Such a name must be refused up front, and whatever is accepted must parse again.
#[test]
fn reference_accepted_only_if_its_normalized_form_parses() {
    let long = "a".repeat(MAX_LEN - 6);
    let err = Reference::parse(&long).expect_err("too long once normalized");
    assert!(err.message.contains("too long"), "{}", err.message);

    let fits = "a".repeat(MAX_LEN - "docker.io/library/".len() - ":latest".len());
    let shown = normalize(&fits).expect("fits once normalized");
    assert_eq!(shown.len(), MAX_LEN);
    assert_eq!(normalize(&shown).expect("the normalized form parses"), shown);
}
