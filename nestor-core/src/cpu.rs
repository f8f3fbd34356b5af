//! Where the core's CPU-bound work runs.
//!
//! A cold sync parses and serialises thousands of documents: pure CPU work
//! that must not run on an async worker (it would stall every other request
//! the worker serves) and that pays to spread over every core. The core
//! starts no threads and no runtime of its own; it hands that work to an
//! [`Offload`] the caller chooses — [`Blocking`] (feature `rt`: tokio's
//! blocking pool, what the server and the CLI use) or [`Inline`] (on the
//! calling task: programs without a runtime, and the default without `rt`).

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

/// Runs CPU-bound jobs somewhere blocking is allowed.
pub trait Offload: Send + Sync {
    /// Runs `job` and resolves once it has finished.
    fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()>;

    /// How many jobs may usefully run at once (at least 1).
    fn parallelism(&self) -> usize {
        1
    }
}

/// Runs every job on the calling task, one after the other.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Offload for Inline {
    fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// Runs jobs on the current tokio runtime's blocking pool, one per core.
#[cfg(feature = "rt")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking;

#[cfg(feature = "rt")]
impl Offload for Blocking {
    fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        let handle = tokio::task::spawn_blocking(job);
        Box::pin(async move {
            if let Err(e) = handle.await {
                // A job panicked: the panic belongs to the caller.
                if let Ok(panic) = e.try_into_panic() {
                    std::panic::resume_unwind(panic);
                }
            }
        })
    }

    fn parallelism(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The offload a service uses when its caller names none: tokio's blocking
/// pool inside a runtime (feature `rt`), the calling task otherwise.
pub fn default_offload() -> Arc<dyn Offload> {
    #[cfg(feature = "rt")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return Arc::new(Blocking);
    }
    Arc::new(Inline)
}

/// Maps `items` in order with `f` on `offload`, spread over its
/// parallelism; up to `min_chunk` items are not worth a hand-off and are
/// mapped on the calling task.
///
/// The lanes share one queue of pieces of `min_chunk` items and each takes
/// the next piece when it is done with one, instead of each being handed a
/// fixed share up front: a lane that the OS schedules less (another process,
/// the store's writer thread) then takes fewer pieces, and the map ends
/// when the work does rather than when the slowest share does.
pub(crate) async fn map<T, U, F>(
    offload: &dyn Offload,
    items: Vec<T>,
    min_chunk: usize,
    f: F,
) -> Vec<U>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    let min_chunk = min_chunk.max(1);
    if items.len() <= min_chunk {
        return items.into_iter().map(f).collect();
    }
    let lanes = offload.parallelism().clamp(1, 8);
    let share = items.len().div_ceil(lanes).max(min_chunk);
    let workers = items.len().div_ceil(share);
    let queue = Arc::new(Pieces::new(items, min_chunk));
    let f = Arc::new(f);
    let jobs: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, f) = (queue.clone(), f.clone());
            offload.run(Box::new(move || {
                while let Some((index, piece)) = queue.take() {
                    let mapped: Vec<U> = piece.into_iter().map(|t| f(t)).collect();
                    queue.done(index, mapped);
                }
            }))
        })
        .collect();
    futures_util::future::join_all(jobs).await;
    queue.results()
}

/// The pieces a [`map`] hands out, and what each mapped to.
struct Pieces<T, U> {
    pending: Mutex<std::iter::Enumerate<std::vec::IntoIter<Vec<T>>>>,
    done: Mutex<Vec<Option<Vec<U>>>>,
}

impl<T, U> Pieces<T, U> {
    fn new(items: Vec<T>, size: usize) -> Self {
        let mut pieces = Vec::with_capacity(items.len().div_ceil(size));
        let mut iter = items.into_iter().peekable();
        while iter.peek().is_some() {
            pieces.push(iter.by_ref().take(size).collect::<Vec<T>>());
        }
        let done = (0..pieces.len()).map(|_| None).collect();
        Pieces {
            pending: Mutex::new(pieces.into_iter().enumerate()),
            done: Mutex::new(done),
        }
    }

    /// The next piece not taken yet, with its position.
    fn take(&self) -> Option<(usize, Vec<T>)> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next()
    }

    fn done(&self, index: usize, mapped: Vec<U>) {
        self.done.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(mapped);
    }

    /// Every piece's results in order (every piece was taken and mapped:
    /// a job that panicked has re-raised its panic in the caller already).
    fn results(&self) -> Vec<U> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *done)
            .into_iter()
            .flatten()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offload that records how many jobs it was given.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Offload for Counting {
        fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Inline.run(job)
        }
        fn parallelism(&self) -> usize {
            4
        }
    }

    #[tokio::test]
    async fn map_keeps_order_across_chunks() {
        let counting = Counting(0.into());
        let doubled = map(&counting, (0..5000).collect(), 256, |i: usize| i * 2).await;
        assert_eq!(doubled, (0..5000).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn few_items_stay_on_the_calling_task() {
        let counting = Counting(0.into());
        assert_eq!(map(&counting, vec![3], 256, |i: i32| i + 1).await, [4]);
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    /// Runs each job on a thread of its own; the first one named `late`
    /// starts 100 ms after the others (a lane the OS scheduled away).
    struct OneLateLane(std::sync::atomic::AtomicBool);

    impl Offload for OneLateLane {
        fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
            let late = !self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let name = if late { "late" } else { "early" };
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    if late {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    job();
                    let _ = tx.send(());
                })
                .expect("a test thread starts");
            Box::pin(async move {
                let _ = rx.await;
            })
        }
        fn parallelism(&self) -> usize {
            2
        }
    }

    #[tokio::test]
    async fn a_late_lane_leaves_its_share_to_the_others() {
        let lanes = OneLateLane(false.into());
        let mapped = map(&lanes, (0..4096).collect(), 64, |i: usize| {
            (i, std::thread::current().name() == Some("late"))
        })
        .await;
        let order: Vec<usize> = mapped.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..4096).collect::<Vec<_>>());
        let on_late = mapped.iter().filter(|(_, late)| *late).count();
        // A fixed half each would have left 2,048 items to the late lane.
        assert!(on_late < 2048, "the late lane mapped {on_late} of 4096");
    }

    #[cfg(feature = "rt")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_runs_off_the_async_workers() {
        let worker = std::thread::current().id();
        let ids = map(&Blocking, (0..4096).collect(), 64, |_: usize| {
            std::thread::current().id()
        })
        .await;
        assert!(ids.iter().all(|id| *id != worker));
    }
}
