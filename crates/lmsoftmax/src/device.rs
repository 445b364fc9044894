//! Device names on the command line: `cpu` (the flex backend, always built), and, when the binary
//! is built with the matching cargo feature, `cuda[:N]`, `rocm[:N]` and `wgpu[:N]`.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The GPU backends compiled into this binary, by the name `--device` takes.
// pushed one by one: which of them exist depends on the features
#[allow(clippy::vec_init_then_push)]
pub fn gpu_backends() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(feature = "cuda")]
    v.push("cuda");
    #[cfg(feature = "rocm")]
    v.push("rocm");
    #[cfg(feature = "wgpu")]
    v.push("wgpu");
    v
}

/// Parses a device name: `cpu` (or `flex`), `cuda`, `cuda:1`, `rocm:0`, `wgpu`, `wgpu:1`.
///
/// # Errors
/// An unknown name, a bad index, or a GPU backend this binary was built without (the message
/// says which cargo feature to enable).
///
/// ```
/// let cpu = lmsoftmax::device::parse_device("cpu").unwrap();
/// assert_eq!(cpu, burn::tensor::Device::flex());
/// let err = lmsoftmax::device::parse_device("tpu").unwrap_err().to_string();
/// assert!(err.contains("cpu"));
/// ```
pub fn parse_device(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => match i.parse::<usize>() {
            Ok(i) => (k, i),
            Err(_) => bail!("--device {spec}: the index after ':' must be a number, e.g. cuda:0"),
        },
        None => (spec, 0),
    };
    match kind {
        "cpu" | "flex" if index == 0 => Ok(Device::flex()),
        "cpu" | "flex" => bail!("--device {spec}: the CPU backend has one device, `cpu`"),
        "cuda" | "rocm" | "wgpu" => gpu_device(kind, index, spec),
        _ => bail!(
            "unknown device '{spec}': use cpu{}",
            gpu_backends()
                .iter()
                .map(|b| format!(", {b}[:N]"))
                .collect::<String>()
        ),
    }
}

#[allow(unused_variables)]
fn gpu_device(kind: &str, index: usize, spec: &str) -> Result<Device> {
    match kind {
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        #[cfg(feature = "rocm")]
        "rocm" => Ok(Device::rocm(index)),
        // wgpu panics on the first operation without a driver: probe it here, so that the
        // error names the flag and what to install.
        #[cfg(feature = "wgpu")]
        "wgpu" => lmsoftmax_kernels::cube::try_wgpu_device(if index == 0 {
            burn::tensor::DeviceKind::DefaultDevice
        } else {
            burn::tensor::DeviceKind::DiscreteGpu(index)
        })
        .map_err(|why| anyhow::anyhow!("--device {spec}: {why}")),
        _ => bail!(
            "--device {spec}: this binary was built without the {kind} backend; rebuild with \
             `cargo build --release -p lmsoftmax --features {kind}`"
        ),
    }
}

/// The device of the official `--gpu N`: GPU `N` of the first GPU backend compiled in.
///
/// # Errors
/// A binary built without GPU backends.
pub fn gpu_index(index: usize) -> Result<Device> {
    match gpu_backends().first() {
        Some(kind) => parse_device(&format!("{kind}:{index}")),
        None => bail!(
            "--gpu {index}: this binary has the CPU backend only; rebuild with `--features cuda` \
             (or rocm, wgpu), or drop --gpu to train on the CPU"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names_and_errors() {
        assert_eq!(parse_device("flex").unwrap(), Device::flex());
        assert!(
            parse_device("cpu:1")
                .unwrap_err()
                .to_string()
                .contains("one device")
        );
        assert!(
            parse_device("cuda:x")
                .unwrap_err()
                .to_string()
                .contains("number")
        );
        if gpu_backends().is_empty() {
            let err = parse_device("cuda:1").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
            assert!(
                gpu_index(0)
                    .unwrap_err()
                    .to_string()
                    .contains("CPU backend only")
            );
        }
    }
}

/// Parses a comma-separated device list (`cuda:0,cuda:1`, `cpu,cpu`). Repeating `cpu` runs
/// several replicas on the one CPU device (threads sharing its cores), which is how the
/// multi-device path is exercised on machines without GPUs.
///
/// # Errors
/// As [`parse_device`]; an empty list.
///
/// ```
/// let two = lmsoftmax::device::parse_devices("cpu,cpu").unwrap();
/// assert_eq!(two.len(), 2);
/// assert!(lmsoftmax::device::parse_devices(" ,").is_err());
/// ```
pub fn parse_devices(list: &str) -> Result<Vec<Device>> {
    let devices = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_device)
        .collect::<Result<Vec<_>>>()?;
    if devices.is_empty() {
        bail!("--devices needs at least one device, e.g. --devices cuda:0,cuda:1");
    }
    Ok(devices)
}

/// The GPUs the official `--multiprocessing-distributed` would use: every visible GPU of the
/// first GPU backend compiled in (`CUDA_VISIBLE_DEVICES` / `HIP_VISIBLE_DEVICES` when set, else
/// the devices the driver lists under `/proc/driver/nvidia/gpus`).
///
/// # Errors
/// A binary without GPU backends, or no visible GPU.
pub fn visible_gpus() -> Result<Vec<Device>> {
    let Some(kind) = gpu_backends().first().copied() else {
        bail!(
            "--multiprocessing-distributed uses every GPU, but this binary has the CPU backend \
             only; rebuild with `--features cuda` (or rocm, wgpu), or pass --devices cpu,cpu to \
             run replicas on the CPU"
        )
    };
    let from_env = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').filter(|s| !s.trim().is_empty()).count())
    };
    let count = match kind {
        "rocm" => from_env("HIP_VISIBLE_DEVICES"),
        _ => from_env("CUDA_VISIBLE_DEVICES"),
    }
    .or_else(|| {
        std::fs::read_dir("/proc/driver/nvidia/gpus")
            .ok()
            .map(|d| d.count())
    })
    .unwrap_or(0);
    if count == 0 {
        bail!("--multiprocessing-distributed: no visible {kind} GPU; name them with --devices");
    }
    (0..count)
        .map(|i| parse_device(&format!("{kind}:{i}")))
        .collect()
}

/// The official multi-node flags, as cifar_train.py / imagenet_train.py take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFlags {
    /// `--world-size`: number of nodes (-1: unset; with `env://`, read `WORLD_SIZE`).
    pub world_size: i64,
    /// `--rank`: this node's rank (-1: unset; with `env://`, read `RANK`).
    pub rank: i64,
    /// `--dist-url`.
    pub dist_url: String,
    /// `--dist-backend`.
    pub dist_backend: String,
}

/// Checks the multi-node flags of one process (not started by `mpirun`): one node (world size -1
/// or 1, rank -1 or 0) trains here; more are refused with how to launch them (over MPI, with the
/// `mpi` feature: Burn 0.22.1 itself has no collective operations across processes).
///
/// # Errors
/// A world size above 1, a rank outside it, an `env://` URL whose variables are not numbers.
///
/// ```
/// use lmsoftmax::device::{DistFlags, check_single_node};
/// let one = DistFlags { world_size: 1, rank: 0, dist_url: "tcp://127.0.0.1:8080".into(), dist_backend: "nccl".into() };
/// assert!(check_single_node(&one).is_ok());
/// let two = DistFlags { world_size: 2, ..one };
/// assert!(check_single_node(&two).unwrap_err().to_string().contains("one node"));
/// ```
pub fn check_single_node(flags: &DistFlags) -> Result<()> {
    let from_env = |value: i64, var: &str| -> Result<i64> {
        if value == -1 && flags.dist_url == "env://" {
            match std::env::var(var) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--dist-url env://: {var}={v} is not a number")),
                Err(_) => Ok(-1),
            }
        } else {
            Ok(value)
        }
    };
    let world = from_env(flags.world_size, "WORLD_SIZE")?;
    let rank = from_env(flags.rank, "RANK")?;
    if world > 1 {
        if crate::distributed::MPI_BUILT {
            bail!(
                "--world-size {world}: this process was not started by mpirun; launch the ranks \
                 with `mpirun -np {world} [--hostfile HOSTS] lmsoftmax train ...` (MPI gives \
                 each its rank; --dist-url is then MPI's rendezvous)"
            );
        }
        bail!(
            "--world-size {world}: training across {world} processes or nodes runs over MPI, \
             which this binary was built without (one node in one process: Burn 0.22.1 has no \
             collectives between processes); build with `cargo build --release -p lmsoftmax \
             --features mpi` (needs Open MPI) and launch `mpirun -np {world} lmsoftmax train \
             ...`, or train on one node with --devices"
        );
    }
    if rank > 0 || world == 0 || world < -1 || rank < -1 {
        bail!("--rank {rank} does not exist in a world of size {world}: use --rank 0 on one node");
    }
    Ok(())
}

/// Checks the official multi-node flags against the MPI world this process runs in (more than one
/// rank): `--world-size` and `--rank` are the world's size and this rank, or with
/// `--multiprocessing-distributed` (one process per device) the number of nodes and this node's
/// rank, as PyTorch's launch takes them; anything else names both values.
///
/// # Errors
/// Flags that disagree with MPI's.
pub fn check_mpi_world(
    flags: &DistFlags,
    world: &crate::distributed::World,
    per_device: bool,
) -> Result<()> {
    let (size, rank) = (world.size() as i64, world.rank() as i64);
    let nodes = nodes_of(world) as i64;
    let node = rank / (size / nodes).max(1);
    let ok_size = flags.world_size == -1
        || flags.world_size == size
        || (per_device && flags.world_size == nodes);
    if !ok_size {
        bail!(
            "--world-size {} disagrees with MPI: mpirun started {size} ranks on {nodes} nodes; \
             drop --world-size or give {size} (or {nodes}, the nodes, with \
             --multiprocessing-distributed)",
            flags.world_size
        );
    }
    // with --multiprocessing-distributed and --world-size as the nodes, --rank is the node's
    let node_ranks = per_device && flags.world_size == nodes && nodes != size;
    let ok_rank = flags.rank == -1 || flags.rank == if node_ranks { node } else { rank };
    if !ok_rank {
        bail!(
            "--rank {} disagrees with MPI: this process is rank {rank} (node {node}); drop --rank, \
             MPI gives every process its rank",
            flags.rank
        );
    }
    Ok(())
}

/// The machines of an MPI world, assuming the same number of ranks on each (the launcher's
/// usual layout): world size over the ranks on this machine.
fn nodes_of(world: &crate::distributed::World) -> usize {
    (world.size() / world.local_size().max(1)).max(1)
}

#[cfg(test)]
mod dist_tests {
    use super::*;

    #[test]
    fn single_node_flags_pass_and_more_nodes_are_refused() {
        let flags = |world_size, rank, url: &str| DistFlags {
            world_size,
            rank,
            dist_url: url.into(),
            dist_backend: "nccl".into(),
        };
        assert!(check_single_node(&flags(-1, -1, "tcp://127.0.0.1:8080")).is_ok());
        assert!(check_single_node(&flags(1, 0, "tcp://127.0.0.1:8080")).is_ok());
        let err = check_single_node(&flags(4, 2, "tcp://10.0.0.1:23456")).unwrap_err();
        assert!(err.to_string().contains("mpirun"), "{err}");
        assert!(check_single_node(&flags(1, 1, "tcp://x:1")).is_err());
        assert_eq!(parse_devices("cpu, cpu ,cpu").unwrap().len(), 3);
        if gpu_backends().is_empty() {
            assert!(
                visible_gpus()
                    .unwrap_err()
                    .to_string()
                    .contains("--devices cpu,cpu")
            );
        }
    }
}
