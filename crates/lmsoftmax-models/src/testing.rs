//! Helpers shared by the unit tests.

/// Asserts that `got` equals `want` element by element within `rel` times the largest magnitude
/// in `want` (at least 1e-3), naming the first element that differs.
pub(crate) fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: got {g}, want {w} (scale {scale})"
        );
    }
}

/// Runs `f` in a fresh rayon pool of `threads` threads (for thread-count independence tests).
pub(crate) fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon thread pool")
        .install(f)
}

/// Moves every BatchNorm parameter and running statistic and every bias off its initial
/// constant (random draws on the tensor's device), so that a swapped, transposed or dropped
/// tensor changes a network's output.
pub(crate) struct Perturb {
    stack: Vec<(String, String)>,
}

impl Perturb {
    /// A perturbation; seed the device first for reproducible draws.
    pub(crate) fn new() -> Self {
        Self { stack: Vec::new() }
    }
}

impl burn::module::ModuleMapper for Perturb {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.into(), container_type.into()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        use burn::tensor::{Distribution, Tensor};
        let Some((field, parent)) = self.stack.last().cloned() else {
            return param;
        };
        let noise = match (parent.as_str(), field.as_str()) {
            ("Struct:BatchNorm", "gamma" | "running_var") => Distribution::Uniform(-0.5, 0.5),
            ("Struct:BatchNorm", "beta" | "running_mean") => Distribution::Normal(0.0, 0.2),
            (_, "bias") => Distribution::Normal(0.0, 0.05),
            _ => return param,
        };
        param.map(|t| {
            let shape = t.shape();
            let device = t.device();
            t + Tensor::random(shape, noise, &device)
        })
    }
}
