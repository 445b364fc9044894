//! Helpers for checking weight transfers: shared by the unit tests and the `export_check`
//! example.

/// Moves every BatchNorm parameter and running statistic and every bias off its initial
/// constant (random draws on the tensor's device), so that a swapped, transposed or dropped
/// tensor changes a network's output.
///
/// ```
/// use burn::module::Module;
/// let device = burn::tensor::Device::flex();
/// device.seed(1);
/// let net = lmsoftmax_models::build("small_cnn", 3, 10, 0.25, &device).unwrap();
/// let _moved = net.map(&mut lmsoftmax_models::testing::Perturb::new());
/// ```
pub struct Perturb {
    stack: Vec<(String, String)>,
}

impl Perturb {
    /// A perturbation; seed the device first for reproducible draws.
    pub fn new() -> Self {
        Self { stack: Vec::new() }
    }
}

impl Default for Perturb {
    fn default() -> Self {
        Self::new()
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
