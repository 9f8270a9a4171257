//! Sub-millisecond sleeps for async code.
//!
//! tokio's timer wheel has a 1 ms resolution and rounds a sleep up to the
//! next tick, so `sleep(1ms)` lasts close to 2 ms — too coarse to inject a
//! 1 ms server latency or hold a connection for 1 ms. [`Delays`] is one
//! thread that keeps deadlines in a min-heap and fires a oneshot for each
//! when due, waking from a timed channel receive (within tens of µs).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A timer thread with microsecond-level precision: tasks hand it a
/// deadline and await a oneshot it fires then.
#[derive(Clone)]
pub(crate) struct Delays {
    tx: mpsc::Sender<(Instant, tokio::sync::oneshot::Sender<()>)>,
}

impl Delays {
    pub(crate) fn start() -> std::io::Result<Delays> {
        let (tx, rx) = mpsc::channel::<(Instant, tokio::sync::oneshot::Sender<()>)>();
        std::thread::Builder::new().name("kpool-echo-delays".into()).spawn(move || {
            // Min-heap on the deadline; the sequence number breaks ties.
            let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
            let mut waiting: HashMap<u64, tokio::sync::oneshot::Sender<()>> = HashMap::new();
            let mut seq = 0u64;
            loop {
                let now = Instant::now();
                while let Some(Reverse((at, id))) = due.peek().copied() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    if let Some(tx) = waiting.remove(&id) {
                        let _ = tx.send(());
                    }
                }
                let next = match due.peek() {
                    Some(Reverse((at, _))) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok((at, tx)) => {
                        seq += 1;
                        due.push(Reverse((at, seq)));
                        waiting.insert(seq, tx);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
        Ok(Delays { tx })
    }

    /// Waits `d`, give or take tens of microseconds.
    pub(crate) async fn sleep(&self, d: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send((Instant::now() + d, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_wait_at_least_their_time() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let delays = Delays::start().unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let (a, b) = tokio::join!(delays.sleep(Duration::from_millis(3)), delays.sleep(Duration::from_millis(1)));
            let _ = (a, b);
            assert!(start.elapsed() >= Duration::from_millis(3));
        });
    }
}
