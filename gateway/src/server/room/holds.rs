//! The calls held on HTTP/1.1 connections, longest-held first: the ones the gateway lets go to
//! make room, each answered `202 Accepted` with its result's location (the result stays
//! fetchable), its connection then closed.
//!
//! A call is registered once, when it starts waiting (the queue path, never the sync path), and
//! leaves when it is answered or its client goes; a shed call's connection counts as freeing a
//! slot until it has closed, so that room on its way is not made twice.

use crate::held::Shed;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The held calls of every HTTP/1.1 connection.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    inner: Mutex<Inner>,
    /// Connections of shed calls that have not closed yet.
    freeing: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By registration order: the first is the longest held.
    held: BTreeMap<u64, Arc<Shed>>,
}

/// One call's registration, kept by its connection while the call waits.
#[must_use]
pub(crate) struct Hold<'a> {
    holds: &'a Holds,
    key: u64,
    ended: bool,
}

/// A shed call's connection, counted as freeing a slot until it is dropped (when the
/// connection has closed).
#[must_use]
pub(crate) struct Leaving<'a>(&'a AtomicUsize);

// === impl Holds ===

impl Holds {
    /// Registers a call that started waiting; `shed` is how to ask it to answer now.
    pub(crate) fn hold(&self, shed: Arc<Shed>) -> Hold<'_> {
        let mut inner = self.lock();
        let key = inner.next;
        inner.next += 1;
        inner.held.insert(key, shed);
        Hold {
            holds: self,
            key,
            ended: false,
        }
    }

    /// Asks up to `wanted` of the longest-held calls to answer now; returns how many it asked.
    pub(super) fn shed(&self, wanted: usize) -> usize {
        let mut asked = 0;
        while asked < wanted {
            let Some((_, shed)) = self.lock().held.pop_first() else {
                break;
            };
            self.freeing.fetch_add(1, Ordering::AcqRel);
            shed.request();
            asked += 1;
        }
        asked
    }

    /// Connections of shed calls that have not closed yet.
    pub(super) fn freeing(&self) -> usize {
        self.freeing.load(Ordering::Acquire)
    }

    /// Calls held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().held.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// === impl Hold ===

impl<'a> Hold<'a> {
    /// The call was answered: `Some` when it had been shed, so its connection must close
    /// (and counts as freeing a slot until the returned value is dropped).
    pub(crate) fn end(mut self) -> Option<Leaving<'a>> {
        self.ended = true;
        let shed = self.holds.lock().held.remove(&self.key).is_none();
        shed.then(|| Leaving(&self.holds.freeing))
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // The client went away while its call waited: its connection closes now.
        if self.holds.lock().held.remove(&self.key).is_none() {
            self.holds.freeing.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_held_calls_are_shed_first_and_count_until_their_connections_close() {
        let holds = Holds::default();
        let sheds: Vec<Arc<Shed>> = (0..3).map(|_| Arc::new(Shed::default())).collect();
        let oldest = holds.hold(sheds[0].clone());
        let middle = holds.hold(sheds[1].clone());
        let newest = holds.hold(sheds[2].clone());
        assert_eq!(holds.len(), 3);
        // The newest is answered by its reply: not shed, and not sheddable any more.
        assert!(newest.end().is_none());
        assert_eq!(holds.shed(5), 2);
        assert_eq!(holds.len(), 0);
        assert_eq!(holds.freeing(), 2);
        // The oldest answers with its 202 and closes; the middle one's client went away.
        let leaving = oldest.end().expect("it was shed");
        assert_eq!(holds.freeing(), 2);
        drop(leaving);
        drop(middle);
        assert_eq!(holds.freeing(), 0);
    }

    #[tokio::test]
    async fn a_shed_call_is_told() {
        let holds = Holds::default();
        let shed = Arc::new(Shed::default());
        let hold = holds.hold(shed.clone());
        assert_eq!(holds.shed(1), 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), shed.requested())
            .await
            .expect("the call was asked to answer");
        assert!(hold.end().is_some());
    }
}
