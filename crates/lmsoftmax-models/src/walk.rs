//! A walk over a module's float tensors that names each one by its Burn path, the module that
//! owns it and its field name: what the PyTorch key mapping, the exporter and the
//! initialisation tests need, without burn-store's collector (which materialises every tensor).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// One float tensor of a module tree.
#[derive(Debug, Clone)]
pub(crate) struct TensorEntry {
    /// The owning module's Burn path, enum variants left out (`blocks.0.bn`; empty at the root).
    pub(crate) module_path: String,
    /// The owning module's type name (`Conv2d`, `BatchNorm`, `Linear`, ...).
    pub(crate) module_type: String,
    /// The field name (`weight`, `bias`, `gamma`, `beta`, `running_mean`, `running_var`).
    pub(crate) param: String,
    /// The tensor's shape in Burn's layout (a linear weight is `[in, out]`).
    pub(crate) shape: Vec<usize>,
    /// The values in row-major order, when asked for.
    pub(crate) values: Option<Vec<f32>>,
}

impl TensorEntry {
    /// The full Burn path (`blocks.0.bn.gamma`).
    pub(crate) fn path(&self) -> String {
        if self.module_path.is_empty() {
            self.param.clone()
        } else {
            format!("{}.{}", self.module_path, self.param)
        }
    }
}

struct Walker {
    /// `(name, container type)` of every module entered, enum variants included.
    stack: Vec<(String, String)>,
    with_values: bool,
    entries: Vec<TensorEntry>,
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The last entry is the field itself, entered with its parent's type ("Struct:Conv2d").
        let Some(((field, parent), modules)) = self.stack.split_last() else {
            return;
        };
        let module_path = modules
            .iter()
            .filter(|(_, container)| !container.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let module_type = parent
            .strip_prefix("Struct:")
            .unwrap_or(parent.as_str())
            .to_string();
        let values = self.with_values.then(|| {
            param
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("a float tensor converts to f32")
        });
        self.entries.push(TensorEntry {
            module_path,
            module_type,
            param: field.clone(),
            shape: param.lazy_shape().dims::<D>().to_vec(),
            values,
        });
    }
}

/// Every float tensor of `module` (parameters and BatchNorm running statistics), in visiting
/// order. Without `with_values` nothing is initialised (lazy shapes are read).
pub(crate) fn walk<M: Module>(module: &M, with_values: bool) -> Vec<TensorEntry> {
    let mut walker = Walker {
        stack: Vec::new(),
        with_values,
        entries: Vec::new(),
    };
    module.visit(&mut walker);
    walker.entries
}
