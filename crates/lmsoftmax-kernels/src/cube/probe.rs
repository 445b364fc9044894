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

/// For the test suites: the default wgpu device with autodiff, or `None` after saying on
/// stderr that the wgpu tests are skipped and why. With `LMSOFTMAX_REQUIRE_GPU=1` (as CI sets
/// it after installing lavapipe) a missing device panics instead.
#[doc(hidden)]
pub fn wgpu_test_device() -> Option<Device> {
    match try_wgpu_device(DeviceKind::DefaultDevice) {
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
