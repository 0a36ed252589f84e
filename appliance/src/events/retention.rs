//! Which clips to delete: too old, or over the disk quota (oldest first),
//! never one still being written.

/// One stored event: its clip, snapshot and record together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The event's id.
    pub id: String,
    /// Its start, UNIX milliseconds (the order of age).
    pub start_ms: u64,
    /// Bytes its files take.
    pub bytes: u64,
    /// Still being written: never deleted.
    pub open: bool,
}

/// The ids to delete, oldest first: those that started more than `max_age_ms`
/// before `now_ms` (0: no age limit), then the oldest until the rest fit in
/// `quota_bytes`.
pub fn to_delete(mut stored: Vec<Stored>, now_ms: u64, max_age_ms: u64, quota_bytes: u64) -> Vec<String> {
    stored.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
    let mut total: u64 = stored.iter().map(|s| s.bytes).sum();
    let mut doomed = Vec::new();
    for s in &stored {
        if s.open {
            continue;
        }
        let too_old = max_age_ms > 0 && now_ms.saturating_sub(s.start_ms) > max_age_ms;
        if too_old || total > quota_bytes {
            total -= s.bytes;
            doomed.push(s.id.clone());
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, start_ms: u64, bytes: u64, open: bool) -> Stored {
        Stored {
            id: id.into(),
            start_ms,
            bytes,
            open,
        }
    }

    #[test]
    fn the_oldest_go_first_until_the_rest_fit() {
        let all = vec![
            stored("c", 3_000, 100, false),
            stored("a", 1_000, 100, false),
            stored("b", 2_000, 100, false),
            stored("d", 4_000, 100, false),
        ];
        assert_eq!(to_delete(all.clone(), 5_000, 0, 250), ["a", "b"]);
        assert!(to_delete(all.clone(), 5_000, 0, 400).is_empty());
        // By age alone: older than 2.5 s.
        assert_eq!(to_delete(all, 5_000, 2_500, 10_000), ["a", "b"]);
    }

    #[test]
    fn a_clip_being_written_is_never_deleted() {
        let all = vec![stored("a", 1_000, 500, true), stored("b", 2_000, 100, false)];
        assert_eq!(to_delete(all, 5_000, 1, 10), ["b"]);
    }
}
