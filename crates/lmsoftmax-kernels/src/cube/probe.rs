//! Finding out whether a wgpu device works before training on it: without a Vulkan (Metal,
//! DX12) driver, wgpu panics on the first operation; this turns that into an error that says
//! what to install.

use burn::tensor::{Device, DeviceKind, Tensor};

/// The wgpu device of `kind` after one small computation on it, or why there is none.
///
/// # Errors
/// The panic message of the first operation (typically: no adapter was found), with the
/// remedy.
///
/// ```no_run
/// use burn::tensor::DeviceKind;
/// match lmsoftmax_kernels::cube::try_wgpu_device(DeviceKind::DefaultDevice) {
///     Ok(device) => println!("training on {device:?}"),
///     Err(why) => eprintln!("{why}"),
/// }
/// ```
pub fn try_wgpu_device(kind: DeviceKind) -> Result<Device, String> {
    let probe = std::panic::catch_unwind(move || {
        let device = Device::wgpu(kind);
        let sum: f32 = Tensor::<1>::ones([4], &device).sum().into_scalar();
        (device, sum)
    });
    match probe {
        Ok((device, 4.0)) => Ok(device),
        Ok((device, sum)) => Err(format!("{device:?} computes 1 + 1 + 1 + 1 = {sum}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(format!(
                "no working wgpu device ({message}); wgpu needs a Vulkan, Metal or DX12 driver \
                 (on Debian, `apt-get install mesa-vulkan-drivers libvulkan1` adds lavapipe, a \
                 software Vulkan device that runs on the CPU)"
            ))
        }
    }
}

/// `device` if it runs an `f64` kernel (the test suites compare in `f64` on the device), or why
/// not: wgpu's OpenGL adapter, which it falls back to without a Vulkan driver, has no `f64` in
/// its shaders.
fn runs_f64(device: Device) -> Result<Device, String> {
    let probe = std::panic::catch_unwind({
        let device = device.clone();
        move || {
            Tensor::<1>::ones([4], &device)
                .cast(burn::tensor::DType::F64)
                .sum()
                .into_data()
                .try_to_vec::<f64>()
        }
    });
    match probe {
        Ok(Ok(sum)) if sum == [4.0] => Ok(device),
        _ => Err(format!(
            "{device:?} cannot run f64 kernels (wgpu's OpenGL fallback adapter, without a Vulkan \
             driver, has no f64), and the wgpu tests compare in f64; on Debian, `apt-get \
             install mesa-vulkan-drivers libvulkan1` adds lavapipe, a software Vulkan device"
        )),
    }
}

/// For the test suites: the default wgpu device with autodiff (one that runs `f64`), or `None` after saying on
/// stderr that the wgpu tests are skipped and why. With `LMSOFTMAX_REQUIRE_GPU=1` (as CI sets
/// it after installing lavapipe) a missing device panics instead.
#[doc(hidden)]
pub fn wgpu_test_device() -> Option<Device> {
    match try_wgpu_device(DeviceKind::DefaultDevice).and_then(runs_f64) {
        Ok(device) => Some(device.autodiff()),
        Err(why) if std::env::var_os("LMSOFTMAX_REQUIRE_GPU").is_some_and(|v| v == "1") => {
            panic!("LMSOFTMAX_REQUIRE_GPU=1: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED (wgpu tests): {why}");
            None
        }
    }
}
