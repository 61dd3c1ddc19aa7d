//! The format version and the ordered list of migrations that bring an older store up to
//! date. Migration `i` turns format `i + 1` into `i + 2`; each runs in its own transaction
//! together with the version bump, so a crash leaves either the old or the new format.

use berth_ipc::{Error, Result};

use super::{Read, Store, Tx, keys};

/// One migration step: rewrites records of the previous format in place.
pub struct Migration {
    /// What it does, for the log.
    pub name: &'static str,
    /// The rewrite.
    pub apply: fn(&mut Tx<'_>) -> Result<()>,
}

/// Every migration, oldest first. Empty: format 1 is the first.
pub const MIGRATIONS: &[Migration] = &[];

/// The format this build writes: 1 + the number of migrations.
pub const FORMAT_VERSION: u32 = 1 + MIGRATIONS.len() as u32;

/// Stamps a new store with the current format, or runs the migrations an older one needs.
/// A store newer than the list knows is refused.
pub(super) fn run(store: &Store, migrations: &[Migration]) -> Result<()> {
    let target = 1 + u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let current: Option<u32> = store.view().get(keys::VERSION)?;
    let Some(mut version) = current else {
        // A fresh store (or one from before versioning, which cannot exist): stamp it.
        return store.write(|tx| tx.put(keys::VERSION, &target));
    };
    if version > target {
        return Err(Error::precondition(format!(
            "metadata store format {version} is newer than this build's {target}: upgrade berth"
        )));
    }
    while version < target {
        let Some(step) = usize::try_from(version - 1).ok().and_then(|i| migrations.get(i)) else {
            return Err(Error::internal(format!("no migration from format {version}")));
        };
        tracing::info!(from = version, name = step.name, "migrating metadata store");
        let next = version + 1;
        store.write(|tx| {
            (step.apply)(tx)?;
            tx.put(keys::VERSION, &next)
        })?;
        version = next;
    }
    Ok(())
}

/// The format version stored.
pub fn stored_version(store: &Store) -> Result<Option<u32>> {
    store.view().get(keys::VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_marker(tx: &mut Tx<'_>) -> Result<()> {
        let seen: Option<u32> = tx.get(b"\0test-marker")?;
        tx.put(b"\0test-marker", &(seen.unwrap_or(0) + 1))
    }

    fn fails(_: &mut Tx<'_>) -> Result<()> {
        Err(Error::internal("boom"))
    }

    #[test]
    fn fresh_store_is_stamped_and_migrations_run_once_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open_with(dir.path(), &[]).expect("open");
            assert_eq!(stored_version(&store).expect("read"), Some(1));
        }
        let steps =
            [Migration { name: "one", apply: add_marker }, Migration { name: "two", apply: add_marker }];
        {
            let store = Store::open_with(dir.path(), &steps).expect("migrate");
            assert_eq!(stored_version(&store).expect("read"), Some(3));
            let marker: Option<u32> = store.view().get(b"\0test-marker").expect("read");
            assert_eq!(marker, Some(2));
        }
        // Reopening runs nothing again.
        let store = Store::open_with(dir.path(), &steps).expect("reopen");
        let marker: Option<u32> = store.view().get(b"\0test-marker").expect("read");
        assert_eq!(marker, Some(2));
    }

    #[test]
    fn failed_migration_leaves_old_format_and_newer_store_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open_with(dir.path(), &[]).expect("open"));
        let bad = [Migration { name: "bad", apply: fails }];
        assert!(Store::open_with(dir.path(), &bad).is_err());
        {
            let store = Store::open_with(dir.path(), &[]).expect("still format 1");
            assert_eq!(stored_version(&store).expect("read"), Some(1));
        }
        let steps = [Migration { name: "one", apply: add_marker }];
        drop(Store::open_with(dir.path(), &steps).expect("to 2"));
        let err = Store::open_with(dir.path(), &[]).err().expect("newer refused");
        assert_eq!(err.code, berth_ipc::Code::FailedPrecondition);
    }
}
