//! Point-in-time snapshots of a pool's occupancy.

/// Occupancy of one endpoint, or of the whole pool.
///
/// `total = idle + in_use + creating`; `waiting` counts callers queued for a
/// connection or for room to create one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Status {
    /// Connections that exist or are being created.
    pub total: usize,
    /// Connections ready in the pool.
    pub idle: usize,
    /// Connections checked out (including ones being health-checked or handed
    /// to a waiter that has not picked them up yet).
    pub in_use: usize,
    /// Connections being created.
    pub creating: usize,
    /// Callers waiting.
    pub waiting: usize,
    /// The cap: `max_size` per endpoint (`burst_limit` if set), or
    /// `total_max_size` for the pool (`usize::MAX` when unbounded).
    pub max: usize,
    /// `min_idle` per endpoint, or its sum over endpoints for the pool.
    pub min: usize,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "total {}, idle {}, in use {}, creating {}, waiting {}",
            self.total, self.idle, self.in_use, self.creating, self.waiting
        )
    }
}

/// Status of the pool and of each endpoint it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatus<K> {
    /// Sums over all endpoints.
    pub pool: Status,
    /// One entry per endpoint, in the order they were first used.
    pub endpoints: Vec<(K, Status)>,
    /// Whether `close()` was called.
    pub closed: bool,
}

impl<K: PartialEq> PoolStatus<K> {
    /// The status of one endpoint, if the pool has seen it.
    pub fn endpoint(&self, key: &K) -> Option<&Status> {
        self.endpoints.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}
