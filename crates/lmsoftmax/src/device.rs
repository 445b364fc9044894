//! Device names on the command line: `cpu` (the flex backend, always built), and, when the binary
//! is built with the matching cargo feature, `cuda[:N]`, `rocm[:N]` and `wgpu[:N]`.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The GPU backends compiled into this binary, by the name `--device` takes.
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
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(if index == 0 {
            burn::tensor::DeviceKind::DefaultDevice
        } else {
            burn::tensor::DeviceKind::DiscreteGpu(index)
        })),
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
