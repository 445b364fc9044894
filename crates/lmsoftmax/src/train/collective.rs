//! What one step and one epoch of a many-rank run exchange ([`crate::distributed::World`]): the
//! gradients, flattened in one fixed parameter order into one buffer for one sum all-reduce, the
//! step's statistics, a checksum of the parameters, and rank 0's model.

use anyhow::{Result, bail};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::model::Classifier;
use super::step::{StepOutput, StepStats};
use crate::distributed::World;

/// One gradient's place in the flat buffer.
struct Slot {
    id: ParamId,
    shape: Vec<usize>,
    device: Device,
}

/// The gradients of `grads`, in the order `model` visits its parameters, flattened and multiplied
/// by `scale`, with where each one goes.
fn flatten(
    model: &Classifier,
    grads: &GradientsParams,
    scale: f32,
) -> Result<(Vec<f32>, Vec<Slot>)> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        scale: f32,
        values: Vec<f32>,
        slots: Vec<Slot>,
        failed: Option<String>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(g) = self.grads.get::<D>(param.id) else {
                return;
            };
            let (shape, device) = (g.dims().to_vec(), g.device());
            match g.into_data().convert::<f32>().try_into_vec::<f32>() {
                Ok(v) => self.values.extend(v.into_iter().map(|x| x * self.scale)),
                Err(e) => self.failed = Some(format!("{e:?}")),
            }
            self.slots.push(Slot {
                id: param.id,
                shape,
                device,
            });
        }
    }
    let mut c = Collect {
        grads,
        scale,
        values: Vec::new(),
        slots: Vec::new(),
        failed: None,
    };
    model.visit(&mut c);
    if let Some(e) = c.failed {
        bail!("reading a gradient for the all-reduce: {e}");
    }
    Ok((c.values, c.slots))
}

/// The gradients back from the flat buffer, each multiplied by `scale`.
fn unflatten(values: &[f32], slots: &[Slot], scale: f32) -> GradientsParams {
    fn put<const D: usize>(out: &mut GradientsParams, slot: &Slot, v: Vec<f32>) {
        let t = Tensor::<D>::from_data(TensorData::new(v, slot.shape.clone()), &slot.device);
        out.register::<D>(slot.id, t);
    }
    let mut out = GradientsParams::new();
    let mut at = 0;
    for slot in slots {
        let n: usize = slot.shape.iter().product();
        let v: Vec<f32> = values[at..at + n].iter().map(|x| x * scale).collect();
        at += n;
        match slot.shape.len() {
            1 => put::<1>(&mut out, slot, v),
            2 => put::<2>(&mut out, slot, v),
            3 => put::<3>(&mut out, slot, v),
            4 => put::<4>(&mut out, slot, v),
            d => unreachable!("a {d}-D parameter"),
        }
    }
    out
}

/// One step of every rank made one: each rank's gradients (of its mean loss) weighted by its
/// rows, summed over the ranks in one all-reduce and divided by the rows of the global batch, so
/// that every rank steps with the gradients of the mean loss over the global batch (the
/// large-margin regulariser's mean over rows included); the statistics summed likewise. With class
/// weights or `ignore_index` a rank's mean is over its own weights or kept rows, and the ranks
/// are weighted by rows, as the several-device step of [`super::parallel`] does.
///
/// # Errors
/// A gradient that cannot be read; ranks whose gradient buffers differ in length.
pub fn all_reduce_step(world: &World, model: &Classifier, out: StepOutput) -> Result<StepOutput> {
    let rows = out.stats.rows;
    let (mut flat, slots) = flatten(model, &out.grads, rows as f32)?;
    let (shortest, longest) = world.min_max("gradients' size", flat.len() as u64);
    if shortest != longest {
        bail!(
            "the ranks' gradients differ in size ({shortest} to {longest} values): the ranks do \
             not train the same model"
        );
    }
    world.all_reduce_sum_f32(&mut flat);
    let s = out.stats;
    let mut sums = [
        rows as f64,
        s.loss_sum,
        s.ce_sum,
        s.reg_sum,
        s.wrong_top1 as f64,
        s.wrong_top5 as f64,
    ];
    world.all_reduce_sum(&mut sums);
    let total = sums[0].max(1.0);
    let stats = StepStats {
        rows: sums[0] as usize,
        loss_sum: sums[1],
        ce_sum: sums[2],
        reg_sum: sums[3],
        wrong_top1: sums[4].round() as usize,
        wrong_top5: sums[5].round() as usize,
    };
    Ok(StepOutput {
        loss: stats.loss_sum / total,
        stats,
        grads: unflatten(&flat, &slots, (1.0 / total) as f32),
    })
}

/// A checksum of the trainable parameters (BatchNorm's running statistics, which each rank keeps
/// for itself, left out): the bits of their f64 sum and of their f64 sum of squares, mixed.
pub fn parameter_checksum(model: &Classifier) -> u64 {
    struct Sum {
        path: Vec<String>,
        sum: f64,
        squares: f64,
    }
    impl ModuleVisitor for Sum {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self
                .path
                .last()
                .is_some_and(|f| lmsoftmax_models::is_running_statistic(f))
            {
                return;
            }
            if let Ok(v) = param
                .val()
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
            {
                for x in v {
                    self.sum += x;
                    self.squares += x * x;
                }
            }
        }
    }
    let mut s = Sum {
        path: Vec::new(),
        sum: 0.0,
        squares: 0.0,
    };
    model.visit(&mut s);
    s.sum.to_bits() ^ s.squares.to_bits().rotate_left(17)
}

/// Stops the run when the ranks' parameters differ (they must stay identical: every rank steps
/// with the same all-reduced gradients).
///
/// # Errors
/// The checksums differ.
pub fn check_identical(world: &World, model: &Classifier, epoch: usize) -> Result<()> {
    let (lo, hi) = world.min_max("parameters' checksum", parameter_checksum(model));
    if lo != hi {
        bail!(
            "after epoch {epoch} the parameters differ between the ranks (checksums {lo:#x} .. \
             {hi:#x}): the ranks no longer train the same model (different data, binaries or \
             devices?); the run stops, its last checkpoint is intact"
        );
    }
    Ok(())
}

/// Every rank's model becomes rank 0's: the same parameters (they are already) and rank 0's
/// BatchNorm running statistics, as DistributedDataParallel's `broadcast_buffers`.
///
/// # Errors
/// A record that cannot be written or read.
pub fn take_root_model(world: &World, model: Classifier) -> Result<Classifier> {
    if world.size() == 1 {
        return Ok(model);
    }
    // Burn's RunningState keeps the last update of a thread pending until it is synced, and
    // neither a record nor a load sees it: `valid` syncs it (the shared state, not a copy), so
    // that rank 0 sends its newest statistics and the others' pending ones do not win later
    let _ = model.valid();
    let mut bytes = if world.is_root() {
        model.to_record_bytes()?
    } else {
        Vec::new()
    };
    world.broadcast(&mut bytes);
    if world.is_root() {
        return Ok(model);
    }
    model.load_record_bytes(bytes, std::path::Path::new("rank 0's model"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmsoftmax_loss::LossConfig;

    #[test]
    fn gradients_survive_the_flat_buffer_in_order() {
        let device = Device::flex();
        let model =
            Classifier::build("small_cnn", 3, 10, 0.25, &LossConfig::default(), &device).unwrap();
        let mut grads = GradientsParams::new();
        let mut ids = Vec::new();
        struct Ids<'a>(&'a mut Vec<(ParamId, Vec<usize>)>);
        impl ModuleVisitor for Ids<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0.push((p.id, p.val().dims().to_vec()));
            }
        }
        model.visit(&mut Ids(&mut ids));
        for (i, (id, shape)) in ids.iter().enumerate().take(3) {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|k| (i * 1000 + k) as f32).collect();
            match shape.len() {
                1 => grads.register::<1>(
                    *id,
                    Tensor::from_data(TensorData::new(v, shape.clone()), &device),
                ),
                4 => grads.register::<4>(
                    *id,
                    Tensor::from_data(TensorData::new(v, shape.clone()), &device),
                ),
                _ => unreachable!(),
            }
        }
        let (flat, slots) = flatten(&model, &grads, 2.0).unwrap();
        assert_eq!(slots.len(), 3);
        let back = unflatten(&flat, &slots, 0.5);
        let (id, shape) = &ids[0];
        assert_eq!(shape.len(), 4);
        let a = grads.get::<4>(*id).unwrap().into_data();
        let b = back.get::<4>(*id).unwrap().into_data();
        assert_eq!(a, b);
        // the checksum sees a change of one parameter
        let c = parameter_checksum(&model);
        assert_eq!(c, parameter_checksum(&model.clone()));
    }
}
