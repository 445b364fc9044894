//! Helpers shared by the unit tests.

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
