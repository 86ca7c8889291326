//! Per-class sums on the device: the building block of the prototype update and of the class
//! statistics behind dynamic re-weighting.

use burn::tensor::{backend::Backend, Int, Tensor};

/// Sums the rows of `values` `[P, D]` per class: row c of the result `[C, D]` is the sum of the
/// rows whose label is c; labels outside `0..C` (the ignore label) count for no class. Also
/// returns the number of rows per class `[C]` (as floats). One matmul with a one-hot matrix,
/// so it stays on the device and on the autodiff graph of `values`.
pub fn class_sums<B: Backend>(values: Tensor<B, 2>, labels: Tensor<B, 1, Int>, num_classes: usize) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let [p] = labels.dims();
    let device = values.device();
    // Compared as floats (exact for class ids): integer tensors may come in different integer
    // dtypes (Flex's reductions return I32 indices, `arange` gives I64), which Flex refuses to mix.
    let classes = Tensor::<B, 1, Int>::arange(0..num_classes as i64, &device).float().reshape([1, num_classes]);
    let one_hot = labels.float().reshape([p, 1]).expand([p, num_classes]).equal(classes.expand([p, num_classes])).float(); // [P, C]
    let counts = one_hot.clone().sum_dim(0).reshape([num_classes]);
    (one_hot.transpose().matmul(values), counts)
}

/// Per-class means of a per-pixel scalar, read back to the host: `Some(mean)` for classes with
/// at least one pixel. `values` and `labels` are `[P]`. Reads `2·C` numbers, not the map.
pub fn class_means<B: Backend>(values: Tensor<B, 1>, labels: Tensor<B, 1, Int>, num_classes: usize) -> Vec<Option<f64>> {
    ClassSums::of_scalar(values, labels, num_classes).means()
}

/// One batch's per-class sums `[C, D]` and row counts `[C]`, before they become means: what
/// data-parallel replicas add up across their batches (sums of sums are the sums of the union),
/// so that every replica folds the same numbers into its prototypes and class statistics.
#[derive(Debug, Clone)]
pub struct ClassSums<B: Backend> {
    /// `[C, D]`.
    pub sums: Tensor<B, 2>,
    /// `[C]`, as floats.
    pub counts: Tensor<B, 1>,
}

impl<B: Backend> ClassSums<B> {
    /// The sums of a per-pixel scalar `values` `[P]` by `labels` `[P]` (`D` = 1).
    pub fn of_scalar(values: Tensor<B, 1>, labels: Tensor<B, 1, Int>, num_classes: usize) -> Self {
        let [p] = values.dims();
        let (sums, counts) = class_sums(values.reshape([p, 1]), labels, num_classes);
        Self { sums, counts }
    }

    /// Sums and counts side by side, `[C, D + 1]`: one buffer to add up across replicas.
    pub fn packed(&self) -> Tensor<B, 2> {
        let [c, _] = self.sums.dims();
        Tensor::cat(vec![self.sums.clone(), self.counts.clone().reshape([c, 1])], 1)
    }

    /// The inverse of [`ClassSums::packed`].
    pub fn unpacked(packed: Tensor<B, 2>) -> Self {
        let [c, d1] = packed.dims();
        let counts = packed.clone().narrow(1, d1 - 1, 1).reshape([c]);
        Self { sums: packed.narrow(1, 0, d1 - 1), counts }
    }

    /// Per-class means of a `D` = 1 sum, read back: `Some(mean)` for classes with a row.
    pub fn means(&self) -> Vec<Option<f64>> {
        let sums = self.sums.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        let counts = self.counts.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        sums.iter().zip(&counts).map(|(&s, &n)| (n > 0.0).then(|| s as f64 / n as f64)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn sums_and_means_by_class_skip_ignored_rows() {
        let dev = Default::default();
        let values = Tensor::<Flex, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [4, 2]), &dev);
        let labels = Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![2i64, 0, 2, 255], [4]), &dev);
        let (sums, counts) = class_sums(values, labels.clone(), 3);
        assert_eq!(sums.into_data().to_vec::<f32>().unwrap(), vec![3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
        assert_eq!(counts.into_data().to_vec::<f32>().unwrap(), vec![1.0, 0.0, 2.0]);
        let scalar = Tensor::<Flex, 1>::from_data(TensorData::new(vec![0.5f32, 0.25, 1.0, 9.0], [4]), &dev);
        assert_eq!(class_means(scalar.clone(), labels.clone(), 3), vec![Some(0.25), None, Some(0.75)]);
        // Two halves of the batch, their sums added (as replicas do), give the whole batch's means.
        let half = |k: usize| ClassSums::of_scalar(scalar.clone().narrow(0, 2 * k, 2), labels.clone().narrow(0, 2 * k, 2), 3);
        let added = ClassSums::unpacked(half(0).packed() + half(1).packed());
        assert_eq!(added.counts.clone().into_data().to_vec::<f32>().unwrap(), vec![1.0, 0.0, 2.0]);
        assert_eq!(added.means(), vec![Some(0.25), None, Some(0.75)]);
    }
}
