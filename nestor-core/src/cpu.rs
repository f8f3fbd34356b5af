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

/// Maps `items` in order with `f` on `offload`, in chunks of at least
/// `min_chunk` spread over its parallelism; up to `min_chunk` items are not
/// worth a hand-off and are mapped on the calling task.
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
    let chunk = items.len().div_ceil(lanes).max(min_chunk);
    let f = Arc::new(f);
    let mut slots = Vec::new();
    let mut jobs = Vec::new();
    let mut iter = items.into_iter().peekable();
    while iter.peek().is_some() {
        let part: Vec<T> = iter.by_ref().take(chunk).collect();
        let slot = Arc::new(Mutex::new(Vec::new()));
        let (out, f) = (slot.clone(), f.clone());
        jobs.push(offload.run(Box::new(move || {
            let mapped: Vec<U> = part.into_iter().map(|t| f(t)).collect();
            *out.lock().unwrap_or_else(|p| p.into_inner()) = mapped;
        })));
        slots.push(slot);
    }
    futures_util::future::join_all(jobs).await;
    slots
        .into_iter()
        .flat_map(|s| std::mem::take(&mut *s.lock().unwrap_or_else(|p| p.into_inner())))
        .collect()
}

/// Maps `items` in order with `f` on `offload`, each item a piece of its
/// own that the next free lane takes: for a few costly items of uneven
/// cost (the policies of a large plan), where [`map`]'s fixed shares would
/// leave one lane idle while the other finishes a heavier share.
pub(crate) async fn map_each<T, U, F>(offload: &dyn Offload, items: Vec<T>, f: F) -> Vec<U>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    let lanes = offload.parallelism().clamp(1, 8).min(items.len());
    if lanes <= 1 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let queue = Arc::new(Queue {
        items: Mutex::new(items.into_iter().enumerate()),
        done: Mutex::new(Vec::with_capacity(count)),
    });
    let f = Arc::new(f);
    let jobs: Vec<_> = (0..lanes)
        .map(|_| {
            let (queue, f) = (queue.clone(), f.clone());
            offload.run(Box::new(move || queue.drain(&*f)))
        })
        .collect();
    futures_util::future::join_all(jobs).await;
    let mut done = std::mem::take(&mut *lock(&queue.done));
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, u)| u).collect()
}

/// The items [`map_each`]'s lanes take one by one, and what they made of
/// each, by position.
struct Queue<T, U> {
    items: Mutex<std::iter::Enumerate<std::vec::IntoIter<T>>>,
    done: Mutex<Vec<(usize, U)>>,
}

impl<T, U> Queue<T, U> {
    /// Maps the next item until none is left (the lock is held only to
    /// take an item or to put its result).
    fn drain(&self, f: &dyn Fn(T) -> U) {
        loop {
            let next = lock(&self.items).next();
            let Some((i, item)) = next else { return };
            let made = f(item);
            lock(&self.done).push((i, made));
        }
    }
}

/// A lock whose holder panicked is still usable here: a panic is resumed
/// by the caller, and the data is only a queue.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// For tests: runs jobs inline, counts them, and claims a number of lanes,
/// so a caller's split into pieces shows without threads.
#[cfg(test)]
pub(crate) struct CountingLanes {
    lanes: usize,
    jobs: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl CountingLanes {
    /// Claims `lanes` lanes; no job run yet.
    pub(crate) fn new(lanes: usize) -> Self {
        CountingLanes {
            lanes,
            jobs: Default::default(),
        }
    }

    /// How many jobs it was given.
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
impl Offload for CountingLanes {
    fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        self.jobs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Inline.run(job)
    }
    fn parallelism(&self) -> usize {
        self.lanes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn map_keeps_order_across_chunks() {
        let counting = CountingLanes::new(4);
        let doubled = map(&counting, (0..5000).collect(), 256, |i: usize| i * 2).await;
        assert_eq!(doubled, (0..5000).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(counting.jobs(), 4);
    }

    #[tokio::test]
    async fn few_items_stay_on_the_calling_task() {
        let counting = CountingLanes::new(4);
        assert_eq!(map(&counting, vec![3], 256, |i: i32| i + 1).await, [4]);
        assert_eq!(counting.jobs(), 0);
    }

    #[tokio::test]
    async fn map_each_keeps_order_with_one_job_per_lane() {
        let counting = CountingLanes::new(4);
        let squared = map_each(&counting, (0..10).collect(), |i: u64| i * i).await;
        assert_eq!(squared, (0..10).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(counting.jobs(), 4);
        let few = map_each(&counting, vec![1, 2], |i: u64| i + 1).await;
        assert_eq!(few, [2, 3]);
        assert_eq!(counting.jobs(), 6);
    }

    #[cfg(feature = "rt")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn map_each_lanes_take_what_a_busy_lane_has_not() {
        // Two lanes: the first item waits for all the others, which only
        // finish if the other lane takes every one of them (with fixed
        // shares the first lane would hold half and wait for itself).
        struct TwoLanes;
        impl Offload for TwoLanes {
            fn run(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
                Blocking.run(job)
            }
            fn parallelism(&self) -> usize {
                2
            }
        }
        let (sent, received) = std::sync::mpsc::channel();
        let received = Mutex::new(received);
        let made = map_each(&TwoLanes, (0..8).collect(), move |i: u32| {
            if i == 0 {
                let received = received.lock().unwrap();
                let wait = std::time::Duration::from_secs(30);
                (1..8).all(|_| received.recv_timeout(wait).is_ok())
            } else {
                sent.send(i).unwrap();
                true
            }
        })
        .await;
        assert_eq!(made, [true; 8]);
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
