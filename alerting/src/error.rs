//! [`StoreError`]: what a storage call can answer besides its result, transient or
//! permanent.

use crate::ids::DeviceId;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such account.
    #[error("no account \"{0}\"")]
    NoAccount(String),
    /// No such device.
    #[error("no device {0}")]
    NoDevice(DeviceId),
    /// The account exists already.
    #[error("account \"{0}\" exists already")]
    AccountExists(String),
    /// Activating the device would exceed its account's device quota.
    #[error("account \"{account}\" has no device quota left")]
    QuotaExceeded {
        /// The account.
        account: String,
    },
    /// The agent key is issued to another account.
    #[error("agent key {key} is issued to another account")]
    KeyTaken {
        /// The key.
        key: String,
    },
    /// A value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The write was refused: another owner claimed the partition since `epoch` (see
    /// [`crate::store::AlertStateStore::claim_partition`]). Permanent for this owner: it
    /// steps back from the partition.
    #[error("partition {partition} was claimed by another owner since epoch {epoch}; the write is refused")]
    Fenced {
        /// The partition.
        partition: i32,
        /// The epoch the writer held.
        epoch: i64,
    },
    /// The backend failed: [`StoreError::is_transient`] says whether trying again later
    /// can help (a locked or unreachable database) or not (a corrupt row, a full schema).
    #[error("database: {source}")]
    Backend {
        /// Whether trying again later can help.
        transient: bool,
        /// What the backend said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A backend failure.
    pub fn backend(
        transient: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            transient,
            source: source.into(),
        }
    }

    /// Whether trying again later can help: only a backend failure that says so. Every
    /// other error (no such account, an invalid value, ...) is permanent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                transient: true,
                ..
            }
        )
    }
}
