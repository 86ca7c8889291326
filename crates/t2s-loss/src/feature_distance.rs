//! ImageNet feature distance (method.md §3 step 3, DAFormer's `calc_feat_dist`): keeps the
//! student's deepest encoder features close to those of a frozen ImageNet-initialised encoder
//! on source pixels of "thing" classes.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

/// DAFormer's thing classes (train ids): traffic light, traffic sign, person, rider, car, truck,
/// bus, train, motorcycle, bicycle.
pub const THING_CLASSES: [usize; 10] = [6, 7, 11, 12, 13, 14, 15, 16, 17, 18];

/// Pixels whose (downscaled) label is one of `classes`: `[N, h, w]` → `[N, h, w]`.
pub fn class_mask<B: Backend>(labels: Tensor<B, 3, Int>, classes: &[usize]) -> Tensor<B, 3, Bool> {
    let mut mask = labels.zeros_like().bool();
    for &c in classes {
        mask = mask.bool_or(labels.clone().equal_elem(c as i64));
    }
    mask
}

/// Mean over the masked pixels of the L2 distance between the feature vectors of `student` and
/// `imagenet` (`[N, C, h, w]` each; `mask` `[N, h, w]`, all pixels when `None`), as DAFormer's
/// `masked_feat_dist`; multiply by `fdist_lambda` (0.005) outside. With an empty mask the result
/// is 0 and stays on the graph (DAFormer would produce NaN). The `imagenet` features are detached.
/// The per-pixel norm is `sqrt(max(Σ d², 1e-12))`, so a pixel where the features agree exactly
/// gets gradient 0 (PyTorch's `norm` backward) instead of sqrt's infinite one.
pub fn feature_distance<B: Backend>(student: Tensor<B, 4>, imagenet: Tensor<B, 4>, mask: Option<Tensor<B, 3, Bool>>) -> Tensor<B, 1> {
    let [n, _, h, w] = student.dims();
    let dist = (student - imagenet.detach()).powi_scalar(2).sum_dim(1).clamp_min(1e-12).sqrt().reshape([n, h, w]);
    match mask {
        None => dist.mean(),
        Some(mask) => {
            let m = mask.float();
            (dist * m.clone()).sum() / m.sum().clamp_min(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type B = Autodiff<Flex>;

    #[test]
    fn masked_mean_of_pixel_distances() {
        let dev = Default::default();
        // 2 channels, 1×3 pixels. Differences: (3, 4) → 5, (0, 0) → 0, (1, 0) → 1.
        let s = Tensor::<B, 4>::from_data(TensorData::new(vec![3.0f32, 1.0, 2.0, 4.0, 1.0, 0.0], [1, 2, 1, 3]), &dev).require_grad();
        let t = Tensor::<B, 4>::from_data(TensorData::new(vec![0.0f32, 1.0, 1.0, 0.0, 1.0, 0.0], [1, 2, 1, 3]), &dev);
        let labels = Tensor::<B, 3, Int>::from_data(TensorData::new(vec![13i64, 0, 6], [1, 1, 3]), &dev);
        let all = feature_distance(s.clone(), t.clone(), None).into_scalar();
        assert!((all - 2.0).abs() < 1e-3, "{all}"); // (5 + 0 + 1) / 3, up to the 1e-6 floor
        let things = feature_distance(s.clone(), t.clone(), Some(class_mask(labels, &THING_CLASSES)));
        let grads = things.clone().backward();
        assert!((things.into_scalar() - 3.0).abs() < 1e-5); // pixels 0 and 2: (5 + 1) / 2
                                                            // d/ds of ‖s − t‖/2 at pixel 0 = (3, 4)/5/2, pixel 2 = (1, 0)/2; pixel 1 unmasked → 0.
        let g = s.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let want = [0.3, 0.0, 0.5, 0.4, 0.0, 0.0];
        assert_eq!(g.len(), want.len());
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-5 && a.is_finite(), "{g:?}");
        }
        let none = Tensor::<B, 3, Int>::from_data(TensorData::new(vec![0i64, 1, 2], [1, 1, 3]), &dev);
        assert_eq!(feature_distance(s, t, Some(class_mask(none, &THING_CLASSES))).into_scalar(), 0.0);
    }
}
