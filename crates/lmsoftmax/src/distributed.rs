//! Many processes, one run: the rank, the world size and the few collectives a data-parallel run
//! needs (sum all-reduce, min/max of a checksum, broadcast of bytes from rank 0), over MPI when the
//! binary is built with the `mpi` feature and launched by `mpirun`, and trivially for one process.
//! Every collective runs under a watchdog ([`World::with_timeout`]): a collective that waits longer
//! than `--collective-timeout` for the other ranks (one of them hangs) ends the job with the step
//! and the rank, never a silent hang. A rank that dies ends the job through `mpirun` itself.
//!
//! No all-reduce, ring or parameter server of our own: MPI's `MPI_Allreduce` does the work.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

/// The default `--collective-timeout`: 30 minutes, as `torch.distributed`'s default timeout.
pub const DEFAULT_COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The processes of a run and the collectives between them.
///
/// ```
/// let world = lmsoftmax::distributed::World::single();
/// let mut v = [1.0, 2.0];
/// world.all_reduce_sum(&mut v);            // one process: unchanged
/// assert_eq!((world.rank(), world.size(), v), (0, 1, [1.0, 2.0]));
/// ```
pub struct World {
    inner: Inner,
    watchdog: Option<Arc<Watchdog>>,
}

enum Inner {
    Single,
    #[cfg(feature = "mpi")]
    Mpi {
        // finalises MPI when the world is dropped
        _universe: mpi::environment::Universe,
        world: mpi::topology::SimpleCommunicator,
        local_rank: usize,
        local_size: usize,
    },
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.size())
    }
}

/// Whether this process was started by an MPI launcher (`mpirun`, `mpiexec`, `srun`).
pub fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// The element types the sum all-reduce takes (what MPI can add, with the `mpi` feature).
#[cfg(feature = "mpi")]
trait Element: mpi::datatype::Equivalence + Copy {}
/// The element types the sum all-reduce takes.
#[cfg(not(feature = "mpi"))]
trait Element: Copy {}
impl Element for f32 {}
impl Element for f64 {}

/// Whether this binary was built with the `mpi` feature.
pub const MPI_BUILT: bool = cfg!(feature = "mpi");

impl World {
    /// One process: rank 0 of 1; every collective is the identity.
    pub fn single() -> Self {
        Self {
            inner: Inner::Single,
            watchdog: None,
        }
    }

    /// The world this process was launched into: MPI's when built with the `mpi` feature and
    /// started by `mpirun`, else one process.
    ///
    /// # Errors
    /// MPI cannot be initialised.
    pub fn from_launcher() -> Result<Self> {
        #[cfg(feature = "mpi")]
        if launched_by_mpi() {
            // only the main thread calls MPI; rayon, the loader and the watchdog never do
            let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            else {
                anyhow::bail!("MPI was initialised twice in this process");
            };
            use mpi::topology::Communicator;
            let world = universe.world();
            let node = world.split_shared(world.rank());
            let (local_rank, local_size) = (node.rank() as usize, node.size() as usize);
            return Ok(Self {
                inner: Inner::Mpi {
                    _universe: universe,
                    world,
                    local_rank,
                    local_size,
                },
                watchdog: None,
            });
        }
        if !MPI_BUILT && launcher_size() > 1 {
            anyhow::bail!(
                "this process was started by an MPI launcher with {} ranks, but this binary was \
                 built without MPI: each rank would train alone; build with `cargo build \
                 --release -p lmsoftmax --features mpi` (or use lmsoftmax-mpi)",
                launcher_size()
            );
        }
        Ok(Self::single())
    }

    /// The same world whose collectives end the process (exit status 1, naming the collective,
    /// the step and the rank) when one waits longer than `timeout` for the other ranks. One
    /// process has nothing to wait for and no watchdog.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        if self.size() > 1 {
            self.watchdog = Some(Watchdog::start(self.rank(), timeout));
        }
        self
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        match &self.inner {
            Inner::Single => 0,
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::topology::Communicator;
                world.rank() as usize
            }
        }
    }

    /// Number of processes.
    pub fn size(&self) -> usize {
        match &self.inner {
            Inner::Single => 1,
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::topology::Communicator;
                world.size() as usize
            }
        }
    }

    /// This process's rank among the processes of its machine (which device it drives).
    pub fn local_rank(&self) -> usize {
        match &self.inner {
            Inner::Single => 0,
            #[cfg(feature = "mpi")]
            Inner::Mpi { local_rank, .. } => *local_rank,
        }
    }

    /// Number of processes on this process's machine.
    pub fn local_size(&self) -> usize {
        match &self.inner {
            Inner::Single => 1,
            #[cfg(feature = "mpi")]
            Inner::Mpi { local_size, .. } => *local_size,
        }
    }

    /// Whether this is rank 0, the one that writes the run's files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`): what a rank does when it stops with
    /// an error while the others may wait for it in a collective. One process just exits.
    pub fn abort(&self, code: i32) -> ! {
        match &self.inner {
            Inner::Single => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::topology::Communicator;
                world.abort(code)
            }
        }
    }

    /// Names what the next collectives belong to (`epoch 3 step 17`), for the watchdog's message.
    pub fn set_context(&self, context: impl Into<String>) {
        if let Some(w) = &self.watchdog {
            w.lock().context = context.into();
        }
    }

    /// Runs one collective under the watchdog.
    fn watched<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        let Some(w) = &self.watchdog else {
            return f();
        };
        w.arm(what);
        let out = f();
        w.disarm();
        out
    }

    /// Sums `values` element-wise over every rank, in place (`MPI_Allreduce`, `MPI_SUM`).
    pub fn all_reduce_sum(&self, values: &mut [f64]) {
        self.sum_in_place("all-reduce (sum)", values);
    }

    /// As [`all_reduce_sum`](Self::all_reduce_sum) for `f32` (the gradients).
    pub fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        self.sum_in_place("all-reduce of the gradients", values);
    }

    /// The sum all-reduce of both, in pieces MPI can count, under the watchdog as `what`.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn sum_in_place<T: Element>(&self, what: &str, values: &mut [T]) {
        self.watched(what, || match &self.inner {
            Inner::Single => {}
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::collective::{CommunicatorCollectives, SystemOperation};
                for piece in values.chunks_mut(MPI_CHUNK) {
                    let send = piece.to_vec();
                    world.all_reduce_into(&send[..], piece, SystemOperation::sum());
                }
            }
        })
    }

    /// The smallest and the largest `value` over the ranks (equal when every rank holds the
    /// same); `what` names it for the watchdog (`checksum`).
    pub fn min_max(&self, what: &str, value: u64) -> (u64, u64) {
        self.watched(&format!("all-reduce of the {what}"), || match &self.inner {
            Inner::Single => (value, value),
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::collective::{CommunicatorCollectives, SystemOperation};
                let (mut lo, mut hi) = (0u64, 0u64);
                world.all_reduce_into(&value, &mut lo, SystemOperation::min());
                world.all_reduce_into(&value, &mut hi, SystemOperation::max());
                (lo, hi)
            }
        })
    }

    /// Rank 0's `bytes` on every rank (what the others pass in is replaced).
    // the bytes grow to rank 0's length: a slice would not do
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables, clippy::ptr_arg))]
    pub fn broadcast(&self, bytes: &mut Vec<u8>) {
        self.watched("broadcast from rank 0", || match &self.inner {
            Inner::Single => {}
            #[cfg(feature = "mpi")]
            Inner::Mpi { world, .. } => {
                use mpi::collective::Root;
                use mpi::topology::Communicator;
                let root = world.process_at_rank(0);
                let mut len = bytes.len() as u64;
                root.broadcast_into(&mut len);
                bytes.resize(len as usize, 0);
                for piece in bytes.chunks_mut(MPI_CHUNK) {
                    root.broadcast_into(piece);
                }
            }
        })
    }
}

/// What the watchdog watches.
struct WatchState {
    /// The collective running and when it started.
    running: Option<(String, Instant)>,
    /// What it belongs to.
    context: String,
}

/// A thread that ends the process when a collective runs longer than the timeout.
struct Watchdog {
    state: Mutex<WatchState>,
    moved: Condvar,
}

impl Watchdog {
    fn start(rank: usize, timeout: Duration) -> Arc<Self> {
        let dog = Arc::new(Self {
            state: Mutex::new(WatchState {
                running: None,
                context: "the start of the run".into(),
            }),
            moved: Condvar::new(),
        });
        let watched = dog.clone();
        std::thread::Builder::new()
            .name("collective-watchdog".into())
            .spawn(move || watched.watch(rank, timeout))
            .expect("starting the watchdog thread");
        dog
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arm(&self, what: &str) {
        self.lock().running = Some((what.to_string(), Instant::now()));
        self.moved.notify_all();
    }

    fn disarm(&self) {
        self.lock().running = None;
    }

    fn watch(&self, rank: usize, timeout: Duration) {
        let mut st = self.lock();
        loop {
            let Some((what, since)) = st.running.clone() else {
                st = self.moved.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let waited = since.elapsed();
            if waited < timeout {
                let rest = (timeout - waited).min(Duration::from_secs(1));
                st = self
                    .moved
                    .wait_timeout(st, rest)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            eprintln!(
                "error: rank {rank}: the {what} at {} waited more than {:.0} s for the other \
                 ranks (--collective-timeout): a rank hangs; ending the job (the last checkpoint \
                 is intact: continue with --resume)",
                st.context,
                timeout.as_secs_f64()
            );
            std::process::exit(1);
        }
    }
}

/// The number of ranks an MPI launcher started, from its environment (1 without one).
pub fn launcher_size() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Elements per MPI call: MPI counts are `int`s, so longer buffers go in pieces.
#[cfg(feature = "mpi")]
const MPI_CHUNK: usize = 1 << 28;

/// The rank this process was given by an MPI launcher, from its environment (0 without one):
/// what test hooks and messages printed before MPI is initialised can use.
pub fn launcher_rank() -> usize {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// The indices rank `rank` of `world` visits in an epoch whose whole order is `order`, as
/// PyTorch's `DistributedSampler`: the order padded to `ceil(n / world) * world` by repeating its
/// start, then every `world`-th index from `rank`. Every rank gets the same number of indices.
///
/// ```
/// use lmsoftmax::distributed::rank_share;
/// let order = vec![4, 0, 3, 1, 2];
/// assert_eq!(rank_share(&order, 0, 2), [4, 3, 2]);
/// assert_eq!(rank_share(&order, 1, 2), [0, 1, 4]); // padded with the first index
/// assert_eq!(rank_share(&order, 0, 1), order);
/// ```
pub fn rank_share(order: &[usize], rank: usize, world: usize) -> Vec<usize> {
    let world = world.max(1);
    if order.is_empty() {
        return Vec::new();
    }
    let total = order.len().div_ceil(world) * world;
    (rank..total)
        .step_by(world)
        .map(|i| order[i % order.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranks_shares_cover_the_epoch_in_the_single_process_order() {
        let order: Vec<usize> = (0..10).rev().collect();
        let shares: Vec<Vec<usize>> = (0..2).map(|r| rank_share(&order, r, 2)).collect();
        // step b of a per-rank batch of 2 on 2 ranks holds the same images as step b of a
        // batch of 4 on one process
        for b in 0..2 {
            let mut two: Vec<usize> = shares
                .iter()
                .flat_map(|s| s[b * 2..(b + 1) * 2].to_vec())
                .collect();
            let mut one = order[b * 4..(b + 1) * 4].to_vec();
            two.sort();
            one.sort();
            assert_eq!(two, one);
        }
        // 3 ranks over 10: padded to 12, 4 each
        let three: Vec<usize> = (0..3).map(|r| rank_share(&order, r, 3).len()).collect();
        assert_eq!(three, [4, 4, 4]);
    }

    #[test]
    fn a_single_world_has_no_watchdog_and_identity_collectives() {
        let w = World::single().with_timeout(Duration::from_millis(1));
        assert!(w.watchdog.is_none());
        let mut b = vec![1u8, 2];
        w.broadcast(&mut b);
        assert_eq!(b, [1, 2]);
        assert_eq!(w.min_max("checksum", 7), (7, 7));
        assert!(w.is_root());
    }
}
