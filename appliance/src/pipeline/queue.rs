//! Bounded queues between pipeline stages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use async_channel::Receiver;

/// What a full queue does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Live sources: never wait; the oldest queued item is dropped and counted.
    DropOldest,
    /// Offline sources: wait for room, so nothing is lost.
    Block,
}

/// The sending end of a bounded queue with an overflow policy.
#[derive(Debug, Clone)]
pub struct QueueSender<T> {
    tx: async_channel::Sender<T>,
    overflow: Overflow,
    dropped: Arc<AtomicU64>,
}

/// The receiver is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// A queue holding at most `capacity` items.
pub fn bounded<T>(capacity: usize, overflow: Overflow) -> (QueueSender<T>, Receiver<T>) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    (
        QueueSender {
            tx,
            overflow,
            dropped: Arc::default(),
        },
        rx,
    )
}

impl<T> QueueSender<T> {
    /// Queues `item`; with `Overflow::Block` this waits while the queue is full.
    pub fn push(&self, item: T) -> Result<(), Closed> {
        match self.overflow {
            Overflow::Block => self.tx.send_blocking(item).map_err(|_| Closed),
            Overflow::DropOldest => match self.tx.force_send(item) {
                Ok(Some(_displaced)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(_) => Err(Closed),
            },
        }
    }

    /// Items dropped so far to make room.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_consumer_costs_the_oldest_items_not_memory_or_time() {
        let (tx, rx) = bounded(3, Overflow::DropOldest);
        for i in 0..1000 {
            tx.push(i).unwrap();
            assert!(tx.len() <= 3);
        }
        assert_eq!(tx.dropped(), 997);
        assert_eq!(
            [rx.try_recv(), rx.try_recv(), rx.try_recv()],
            [Ok(997), Ok(998), Ok(999)]
        );
        drop(rx);
        assert_eq!(tx.push(1), Err(Closed));
    }

    #[test]
    fn blocking_queue_loses_nothing() {
        let (tx, rx) = bounded(2, Overflow::Block);
        let consumer = std::thread::spawn(move || {
            rx.recv_blocking()
                .into_iter()
                .chain(std::iter::from_fn(|| rx.recv_blocking().ok()))
                .collect::<Vec<_>>()
        });
        for i in 0..500 {
            tx.push(i).unwrap();
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), (0..500).collect::<Vec<_>>());
    }
}
