//! The segmentor: backbone + decode head + (optional) contrastive projection head, built from a
//! serde configuration, returning logits and embeddings.

use crate::T2sBackend;
use std::collections::HashSet;

use burn::module::{Module, ParamId};
use burn::tensor::{backend::Backend, DType, Tensor};

use crate::io::params::inventory;
use crate::nets::daformer_head::DaFormerHead;
use crate::nets::deeplabv2_head::DeepLabV2Head;
use crate::nets::hrda::{CropBox, HrdaBranch, HrdaConfig};
use crate::nets::mit::MixTransformer;
use crate::nets::projection_head::ProjectionHead;
use crate::nets::resnet::ResNet;
use crate::nets::segformer_head::SegFormerHead;

mod config;
mod hrda_passes;
use crate::ops::resize::resize_bilinear;
use crate::precision::{cast_to, weight_dtype};
pub use config::{BackboneConfig, DecodeHeadConfig, SegmentorConfig, PRESETS};

/// Inputs smaller than this (in either side) are padded for [`Segmentor::predict`].
pub const MIN_PREDICT_SIDE: usize = 64;

/// Backbone network.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    ResNet(ResNet<B>),
    Mit(MixTransformer<B>),
}

/// Decode head.
#[derive(Module, Debug)]
pub enum DecodeHead<B: Backend> {
    DeepLabV2(DeepLabV2Head<B>),
    DaFormer(DaFormerHead<B>),
    SegFormer(SegFormerHead<B>),
}

/// A backbone pass for [`Segmentor::forward_encoded`]: images `[k·n, 3, H, W]` and the number of
/// sub-batches k → the four stage outputs.
pub type Encode<'a, B> = dyn FnMut(Tensor<B, 4>, usize) -> Vec<Tensor<B, 4>> + 'a;

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct SegOutput<B: Backend> {
    /// Class logits `[N, classes, H/s, W/s]`, s = [`SegmentorConfig::logit_stride`].
    pub logits: Tensor<B, 4>,
    /// Unit-length embeddings `[N, D, h, w]` from the projection head (DeepLabV2: on layer4,
    /// h = H/8; MiT heads: on the fused 1/4 feature), when the network has one.
    pub embedding: Option<Tensor<B, 4>>,
    /// The four backbone stage outputs `[N, C_i, H_i, W_i]` (for the ImageNet feature distance).
    pub features: Vec<Tensor<B, 4>>,
}

/// Backbone + decode head + projection head (+ HRDA's scale-attention head).
#[derive(Module, Debug)]
pub struct Segmentor<B: Backend> {
    pub backbone: Backbone<B>,
    pub decode_head: DecodeHead<B>,
    pub proj_head: Option<ProjectionHead<B>>,
    /// HRDA's scale-attention head (`model.network.hrda`).
    pub scale_attention: Option<DecodeHead<B>>,
    /// HRDA's settings, with the scale-attention head.
    #[module(skip)]
    pub hrda: Option<HrdaConfig>,
    /// Which HRDA prediction whole-image passes give ([`with_hrda_branch`](Self::with_hrda_branch));
    /// the fusion unless eval or predict asks for one scale alone.
    #[module(skip)]
    pub hrda_branch: HrdaBranch,
    /// Input pixels per logit pixel ([`SegmentorConfig::logit_stride`]).
    #[module(skip)]
    pub logit_stride: usize,
    /// The side [`Segmentor::predict`] pads smaller inputs to (without HRDA's factor 2): the
    /// larger of [`MIN_PREDICT_SIDE`] and the backbone's [`SegmentorConfig::min_input_side`].
    #[module(skip)]
    pub min_side: usize,
}

/// What HRDA's training pass gives ([`Segmentor::forward_hrda`]).
#[derive(Debug, Clone)]
pub struct HrdaOutput<B: Backend> {
    /// The fused prediction `[N, classes, H/s, W/s]` (s: the logit stride, H×W the full
    /// resolution).
    pub fused: Tensor<B, 4>,
    /// The detail prediction on each sub-batch's crop, `[N, classes, ch/s, cw/s]`.
    pub detail: Tensor<B, 4>,
    /// Each sub-batch's detail crop, in full-resolution pixels.
    pub crops: Vec<CropBox>,
    /// The context pass (the images at half resolution): its logits `[N, classes, H/2s, W/2s]`,
    /// embedding and backbone features.
    pub context: SegOutput<B>,
}

impl<B: T2sBackend> Segmentor<B> {
    /// This network computing in `precision`: a [`compute_copy`](crate::compute_copy) of it (a
    /// clone for f32), for one forward pass when it records gradients. Parameters not drawn yet
    /// are drawn first: Burn draws a lazy parameter once per clone, and the copy must compute
    /// with (and give gradients to) this network's values.
    pub fn at_precision(&self, precision: crate::Precision) -> Self {
        crate::precision::draw_parameters(self);
        crate::compute_copy(self.clone(), precision)
    }

    /// Backbone stage outputs for an image batch `[N, 3, H, W]`.
    /// f32 whatever the weights' type, as [`Segmentor::forward`]'s. An HRDA network's are of the
    /// images at its context scale, half the resolution (HRDA's `feature_scale = 0.5`), as its
    /// forward pass's features.
    pub fn extract_features(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        self.features_of(self.context_input(x), 1).into_iter().map(|f| cast_to(f, DType::F32)).collect()
    }

    /// The images the backbone's whole-image features are of: an HRDA network's context scale,
    /// half the resolution (HRDA's `feature_scale = 0.5`, `[N, 3, H, W]` → `[N, 3, H/2, W/2]`),
    /// else the images themselves.
    fn context_input(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match &self.hrda {
            Some(_) => {
                let [_, _, h, w] = x.dims();
                resize_bilinear(x, h / 2, w / 2)
            }
            None => x,
        }
    }

    /// The feature the projection head reads: the decode head's fused feature (DeepLabV2: the
    /// last backbone stage), f32. `[N, 3, H, W]` → `[N, E, h, w]`, the embedding's size (see
    /// [`SegOutput::embedding`]); an HRDA network's is its context pass's, on the images at half
    /// resolution, as [`extract_features`](Self::extract_features). For analyses of what a
    /// network's classifier sees (`t2s similarity --space decoder`), with or without a
    /// projection head.
    pub fn head_feature(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let features = self.features_of(self.context_input(x), 1);
        cast_to(Self::decode(&self.decode_head, &features, 1).1, DType::F32)
    }

    /// The backbone's stage outputs, in the weights' float type (the input is cast to it):
    /// `[N, 3, H, W]` → four `[N, C_k, H_k, W_k]`.
    fn features_of(&self, x: Tensor<B, 4>, sub_batches: usize) -> Vec<Tensor<B, 4>> {
        let x = cast_to(x, weight_dtype(self));
        match &self.backbone {
            Backbone::ResNet(r) => r.forward(x, sub_batches),
            Backbone::Mit(m) => m.forward(x),
        }
    }

    /// `[N, 3, H, W]` (normalised RGB) → logits, embedding and backbone features (see
    /// [`SegOutput`] for shapes).
    pub fn forward(&self, x: Tensor<B, 4>) -> SegOutput<B> {
        self.forward_sub_batches(x, 1)
    }

    /// The forward pass over k = `sub_batches` independent batches concatenated along N
    /// (`[k·n, 3, H, W]`, e.g. a training step's source, mixed and pseudo-target images): the
    /// same outputs, and in training the same gradients and batch-norm running statistics, as
    /// k [`forward`](Self::forward) calls on the parts in order, since every layer treats
    /// images independently except batch norm, which takes statistics per sub-batch
    /// ([`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)). Only the random draws of
    /// dropout and stochastic depth differ (same distribution). One pass launches each
    /// kernel once instead of k times, which is what bounds a GPU's training step (docs/gpu.md).
    ///
    /// The input is cast to the weights' float type (bf16 for a [`compute_copy`](crate::compute_copy) at
    /// [`Precision::Bf16`](crate::Precision)) and the outputs are f32, for the losses.
    ///
    /// # Panics
    /// When `sub_batches` is 0 or does not divide N.
    pub fn forward_sub_batches(&self, x: Tensor<B, 4>, sub_batches: usize) -> SegOutput<B> {
        self.forward_with(x, sub_batches, false)
    }

    /// [`forward_sub_batches`](Self::forward_sub_batches), with the projection head's input cut
    /// from the graph when `detach_projection_input`: gradients through the embedding then
    /// train the projection head alone (T2S's projection-head warm-up, `t2s.head_warmup`).
    ///
    /// An HRDA network gives its whole-image prediction ([`Segmentor::hrda_whole`]).
    pub fn forward_with(&self, x: Tensor<B, 4>, sub_batches: usize, detach_projection_input: bool) -> SegOutput<B> {
        match &self.hrda {
            Some(hrda) => self.hrda_whole(x, hrda, sub_batches, detach_projection_input),
            None => self.single_scale(x, sub_batches, detach_projection_input, &mut |x, k| self.features_of(x, k)),
        }
    }

    /// The single-scale pass of [`forward_with`](Self::forward_with) with the backbone's stage
    /// outputs computed by `encode` (input images `[k·n, 3, H, W]` and k → the four stage outputs
    /// in the compute type, as the backbone's): for a training pass that computes them its own way
    /// (activation recomputation, `MixTransformer::forward_taped`).
    ///
    /// # Panics
    /// On an HRDA network (its training pass is [`forward_hrda_encoded`](Self::forward_hrda_encoded)).
    pub fn forward_encoded(
        &self,
        x: Tensor<B, 4>,
        sub_batches: usize,
        detach_projection_input: bool,
        encode: &mut Encode<'_, B>,
    ) -> SegOutput<B> {
        assert!(self.hrda.is_none(), "an HRDA network trains through forward_hrda_encoded");
        self.single_scale(x, sub_batches, detach_projection_input, encode)
    }

    /// Logits and the feature the projection head takes, from `head` on backbone `features`
    /// (four `[N, C_k, H_k, W_k]`): logits `[N, classes, H_1, W_1]` and the head's fused feature
    /// `[N, E, H_1, W_1]` (DeepLabV2: logits at the last stage's size and that stage itself).
    fn decode(head: &DecodeHead<B>, features: &[Tensor<B, 4>], sub_batches: usize) -> (Tensor<B, 4>, Tensor<B, 4>) {
        match head {
            DecodeHead::DeepLabV2(h) => {
                let last = features[features.len() - 1].clone();
                (h.forward(last.clone()), last)
            }
            DecodeHead::DaFormer(h) => {
                let o = h.forward(features.to_vec(), sub_batches);
                (o.logits, o.feature)
            }
            DecodeHead::SegFormer(h) => {
                let o = h.forward(features.to_vec(), sub_batches);
                (o.logits, o.feature)
            }
        }
    }

    /// The single-scale network's pass ([`forward_with`](Self::forward_with) without HRDA).
    fn single_scale(&self, x: Tensor<B, 4>, sub_batches: usize, detach_projection_input: bool, encode: &mut Encode<'_, B>) -> SegOutput<B> {
        let features = encode(x, sub_batches);
        let (logits, head_feature) = Self::decode(&self.decode_head, &features, sub_batches);
        let head_feature = if detach_projection_input { head_feature.detach() } else { head_feature };
        let embedding = self.proj_head.as_ref().map(|p| p.forward(head_feature, sub_batches));
        let f32 = |t: Tensor<B, 4>| cast_to(t, DType::F32);
        SegOutput { logits: f32(logits), embedding: embedding.map(f32), features: features.into_iter().map(f32).collect() }
    }

    /// Logits bilinearly upsampled to the input's size: `[N, 3, H, W]` → `[N, classes, H, W]`.
    ///
    /// Works for any size: inputs with a side below [`Segmentor::min_predict_side`] (too small for
    /// the strided convolutions, e.g. MiT's 8×8 spatial reduction at 1/4 scale) are zero-padded
    /// at the bottom and right — zero is the ImageNet mean after normalisation — and the logits
    /// cropped back.
    pub fn predict(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let min = self.min_predict_side();
        let (ph, pw) = (h.max(min), w.max(min));
        if (ph, pw) == (h, w) {
            return resize_bilinear(self.forward(x).logits, h, w);
        }
        let padded = Tensor::zeros([n, c, ph, pw], &x.device()).slice_assign([0..n, 0..c, 0..h, 0..w], x);
        let logits = resize_bilinear(self.forward(padded).logits, ph, pw);
        let classes = logits.dims()[1];
        // [N, classes, ph, pw] -> [N, classes, H, W]
        logits.slice([0..n, 0..classes, 0..h, 0..w])
    }

    /// The smallest input side a whole-image pass takes: [`MIN_PREDICT_SIDE`], or more where the
    /// backbone needs more (a MiT with larger strides), twice that with HRDA, whose context pass
    /// sees the image at half its size.
    pub fn min_predict_side(&self) -> usize {
        if self.hrda.is_some() {
            2 * self.min_side
        } else {
            self.min_side
        }
    }
}

impl<B: Backend> Segmentor<B> {
    /// Parameters split for the optimiser the way DAFormer's mmcv `paramwise_cfg` splits them:
    /// `custom_keys = {head: lr_mult 10, norm: decay_mult 0, pos_block: decay_mult 0}` matches
    /// substrings of the parameter name. Our names mirror mmseg's, so the same substring rule
    /// gives the same groups: every `*head*` parameter (decode and projection heads) at 10× the
    /// learning rate; every `*norm*` parameter (MiT's LayerNorms) without weight decay. Note
    /// that, exactly as in DAFormer, BatchNorm layers named `bn` keep their weight decay.
    pub fn param_groups(&self) -> ParamGroups {
        let mut groups = ParamGroups::default();
        for e in inventory::<B, _>(self).into_iter().filter(|e| e.trainable) {
            if e.path.contains("norm") || e.path.contains("pos_block") {
                groups.no_decay.insert(e.id);
            }
            if e.path.contains("head") {
                groups.head.push(e.id);
            } else {
                groups.backbone.push(e.id);
            }
        }
        groups
    }
}

/// Parameter groups of a segmentor.
#[derive(Debug, Default, Clone)]
pub struct ParamGroups {
    /// Backbone parameters (base learning rate).
    pub backbone: Vec<ParamId>,
    /// Decode-head and projection-head parameters (10× learning rate in DAFormer's recipe).
    pub head: Vec<ParamId>,
    /// Parameters without weight decay (normalisation layers).
    pub no_decay: HashSet<ParamId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::params::count_trainable;
    use burn::backend::Flex;

    fn tiny() -> SegmentorConfig {
        serde_json::from_str(
            r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1]},
                "decode_head":{"type":"daformer","embed_dim":16,"channels":16},"num_classes":5,"projection":{"dim":8}}"#,
        )
        .unwrap()
    }

    #[test]
    fn param_groups_follow_daformers_name_rules() {
        let device = Default::default();
        let net = tiny().init::<Flex>(&device).unwrap();
        let groups = net.param_groups();
        let numel = |ids: &mut dyn Iterator<Item = &ParamId>| -> usize {
            let sizes: std::collections::HashMap<ParamId, usize> =
                inventory::<Flex, _>(&net).into_iter().map(|e| (e.id, e.shape.iter().product())).collect();
            ids.map(|id| sizes[id]).sum()
        };
        let Backbone::Mit(backbone) = &net.backbone else { panic!() };
        assert_eq!(numel(&mut groups.backbone.iter()), count_trainable::<Flex, _>(backbone));
        let DecodeHead::DaFormer(head) = &net.decode_head else { panic!() };
        let proj = net.proj_head.as_ref().unwrap();
        assert_eq!(numel(&mut groups.head.iter()), count_trainable::<Flex, _>(head) + count_trainable::<Flex, _>(proj));
        // LayerNorm parameters only (BNs are named `bn`): per stage of width C, the patch-embed
        // norm, norm1 and norm2 of the block, the stage norm (2C each) and, where the spatial
        // reduction ratio > 1, the attention's norm: 80 + 160 + 240 + 256 = 736 with sr
        // [8, 4, 2, 1].
        assert_eq!(numel(&mut groups.no_decay.iter()), 5 * 2 * 8 + 5 * 2 * 16 + 5 * 2 * 24 + 4 * 2 * 32);
    }

    #[test]
    fn outputs_have_the_documented_shapes() {
        let device = Default::default();
        let net = tiny().init::<Flex>(&device).unwrap();
        let x = Tensor::<Flex, 4>::zeros([2, 3, 64, 96], &device);
        let out = net.forward(x.clone());
        assert_eq!(out.logits.dims(), [2, 5, 16, 24]);
        assert_eq!(out.embedding.unwrap().dims(), [2, 8, 16, 24]);
        // The head feature is what the projection head reads: projecting it gives the embedding.
        let r = Tensor::<Flex, 4>::random([2, 3, 64, 96], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let feature = net.head_feature(r.clone());
        assert_eq!(feature.dims(), [2, 16, 16, 24]);
        let projected = net.proj_head.as_ref().unwrap().forward(feature, 1);
        projected
            .into_data()
            .assert_approx_eq::<f32>(&net.forward(r).embedding.unwrap().into_data(), burn::tensor::Tolerance::absolute(1e-6));
        assert_eq!(net.predict(x).dims(), [2, 5, 64, 96]);
        // Inputs too small for the strided convolutions are padded and cropped back.
        assert_eq!(net.predict(Tensor::<Flex, 4>::zeros([1, 3, 20, 7], &device)).dims(), [1, 5, 20, 7]);
    }

    /// A MiT whose strides need more than [`MIN_PREDICT_SIDE`]: with strides [4, 4, 4, 2] and
    /// spatial reductions [8, 4, 2, 1], stage 3's 2×2 reduction needs 2 tokens, so stage 2 needs
    /// 5, stage 1 17 and the input (17 − 1)·4 + 1 = 65 pixels (by hand from the patch
    /// embeddings' `(side + 2·(k/2) − k)/s + 1`); a 20×20 image is padded to 65, not 64.
    #[test]
    fn small_inputs_are_padded_to_what_the_backbone_needs() {
        let device = Default::default();
        let mut cfg = tiny();
        let BackboneConfig::Mit(m) = &mut cfg.backbone else { unreachable!("a MiT configuration") };
        m.strides = [4, 4, 4, 2];
        assert_eq!(cfg.min_input_side(), 65);
        let net = cfg.init::<Flex>(&device).unwrap();
        assert_eq!(net.min_predict_side(), 65);
        assert_eq!(net.predict(Tensor::<Flex, 4>::zeros([1, 3, 20, 20], &device)).dims(), [1, 5, 20, 20]);
        assert_eq!(tiny().init::<Flex>(&device).unwrap().min_predict_side(), MIN_PREDICT_SIDE);
    }

    /// `projection.linear` from a configuration: one convolution, and embeddings of the usual shape.
    #[test]
    fn a_linear_projection_head_from_the_configuration() {
        let device = Default::default();
        let mut cfg = tiny();
        cfg.projection = Some(serde_json::from_str(r#"{"dim": 8, "linear": true}"#).unwrap());
        let net = cfg.init::<Flex>(&device).unwrap();
        let head = net.proj_head.as_ref().unwrap();
        assert!(head.bn.is_none() && head.conv2.is_none());
        assert_eq!(head.conv1.weight.dims(), [8, 16, 1, 1]);
        assert_eq!(net.forward(Tensor::<Flex, 4>::zeros([1, 3, 64, 96], &device)).embedding.unwrap().dims(), [1, 8, 16, 24]);
    }

    /// With the projection head's input detached, a loss of the embedding alone reaches the
    /// projection head's parameters and nothing before it; attached, the backbone's too.
    #[test]
    fn a_detached_projection_input_trains_the_head_alone() {
        type AB = burn::backend::Autodiff<Flex>;
        let json = r#"{"backbone":{"type":"resnet","depth":0,"layers":[1,1,1,1],"block":"bottleneck","stem_width":8,"base_width":4},
            "decode_head":{"type":"deeplabv2"},"num_classes":5,"projection":{"dim":8}}"#;
        let cfg: SegmentorConfig = serde_json::from_str(json).unwrap();
        let device = Default::default();
        let net = cfg.init::<AB>(&device).unwrap();
        let x = Tensor::<AB, 4>::random([2, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        for detach in [true, false] {
            let out = net.forward_with(x.clone(), 1, detach);
            let grads = out.embedding.unwrap().sin().sum().backward();
            let with_grads = |module: &dyn Fn(&mut Counter)| {
                let mut c = Counter { grads: &grads, count: 0 };
                module(&mut c);
                c.count
            };
            let all = with_grads(&|c| net.visit(c));
            let head = with_grads(&|c| net.proj_head.as_ref().unwrap().visit(c));
            assert!(head >= 4, "detach {detach}: {head} projection-head parameters have gradients");
            assert_eq!(all == head, detach, "detach {detach}: {} parameters before the head have gradients", all - head);
        }
    }

    /// Counts the parameters that have a gradient.
    struct Counter<'a> {
        grads: &'a <burn::backend::Autodiff<Flex> as burn::tensor::backend::AutodiffBackend>::Gradients,
        count: usize,
    }

    impl burn::module::ModuleVisitor<burn::backend::Autodiff<Flex>> for Counter<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<burn::backend::Autodiff<Flex>, D>>) {
            self.count += param.val().grad(self.grads).is_some() as usize;
        }
    }

    /// One pass over three concatenated batches against three passes, on the autodiff
    /// backend in training mode: the same logits and embeddings per part, the same gradients
    /// of a loss that weights each part differently, and the same batch-norm running
    /// statistics (DAFormer head, projection head and a deep-stem ResNet all hold batch norms
    /// whose statistics must stay per part). Dropout and stochastic depth are off, since their
    /// random draws differ between the two.
    #[test]
    fn sub_batches_equal_separate_passes() {
        type AB = burn::backend::Autodiff<Flex>;
        let mit = r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1],"drop_path_rate":0.0},
            "decode_head":{"type":"daformer","embed_dim":16,"channels":16,"dropout":0.0},"num_classes":5,"projection":{"dim":8}}"#;
        let resnet = r#"{"backbone":{"type":"resnet","depth":0,"layers":[1,1,1,1],"block":"bottleneck","stem":"deep","stem_width":8,"base_width":4},
            "decode_head":{"type":"deeplabv2"},"num_classes":5,"projection":{"dim":8}}"#;
        let device = Default::default();
        for json in [mit, resnet] {
            let cfg: SegmentorConfig = serde_json::from_str(json).unwrap();
            let net = cfg.init::<AB>(&device).unwrap();
            // Burn draws parameters lazily, per clone: read them all once so copies agree.
            crate::precision::draw_parameters(&net);
            let (n, parts) = (2, 3);
            // Parts with different means and spreads, so per-part statistics differ.
            let x = Tensor::<AB, 4>::random([parts * n, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let scale: Vec<f32> = (0..parts * n).map(|i| 0.5 + (i / n) as f32).collect();
            let x = x * Tensor::<AB, 1>::from_floats(scale.as_slice(), &device).reshape([parts * n, 1, 1, 1])
                + Tensor::<AB, 1>::from_floats(scale.as_slice(), &device).reshape([parts * n, 1, 1, 1]).sub_scalar(1.0);
            let x = Tensor::<AB, 4>::from_data(x.into_data(), &device);
            // The loss weights part i by (i + 1) and reads logits and embedding.
            let loss_of = |outs: Vec<(Tensor<AB, 4>, Tensor<AB, 4>)>| {
                outs.into_iter()
                    .enumerate()
                    .map(|(i, (l, e))| (l.sin().sum() + e.cos().sum()).mul_scalar((i + 1) as f64))
                    .reduce(|a, b| a + b)
                    .unwrap()
            };
            // A fresh copy per run: clones share their running statistics.
            let run = |joint: bool| {
                let net = cfg.init::<AB>(&device).unwrap().load_record(net.clone().into_record());
                let outs: Vec<(Tensor<AB, 4>, Tensor<AB, 4>)> = if joint {
                    let out = net.forward_sub_batches(x.clone(), parts);
                    let emb = out.embedding.unwrap();
                    (0..parts).map(|i| (out.logits.clone().narrow(0, i * n, n), emb.clone().narrow(0, i * n, n))).collect()
                } else {
                    (0..parts)
                        .map(|i| {
                            let out = net.forward(x.clone().narrow(0, i * n, n));
                            (out.logits, out.embedding.unwrap())
                        })
                        .collect()
                };
                let values: Vec<f32> = outs
                    .iter()
                    .flat_map(|(l, e)| [l.to_data().to_vec::<f32>().unwrap(), e.to_data().to_vec::<f32>().unwrap()])
                    .flatten()
                    .collect();
                let grads = loss_of(outs).backward();
                let mut grad_values = Vec::new();
                let mut stats = Vec::new();
                // `valid()` folds the pending running-statistic updates into their values.
                let _ = burn::module::AutodiffModule::valid(&net);
                net.visit(&mut Gather { grads: &grads, grad_values: &mut grad_values, stats: &mut stats });
                (values, grad_values, stats)
            };
            let (v1, g1, s1) = run(true);
            let (v2, g2, s2) = run(false);
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len(), "{what}");
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!((p - q).abs() <= 2e-4 * (1.0 + q.abs()), "{what} [{i}]: joint {p} vs separate {q}");
                }
            };
            close(&v1, &v2, "outputs");
            close(&g1, &g2, "parameter gradients");
            close(&s1, &s2, "running statistics");
            // The running statistics moved from their initial 0 and 1.
            assert!(s1.iter().any(|v| *v != 0.0 && *v != 1.0));
        }
    }

    /// Every parameter's gradient (trainable ones) and every running statistic, in visit order.
    struct Gather<'a> {
        grads: &'a <burn::backend::Autodiff<Flex> as burn::tensor::backend::AutodiffBackend>::Gradients,
        grad_values: &'a mut Vec<f32>,
        stats: &'a mut Vec<f32>,
    }

    impl burn::module::ModuleVisitor<burn::backend::Autodiff<Flex>> for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<burn::backend::Autodiff<Flex>, D>>) {
            let t = param.val();
            match t.grad(self.grads) {
                Some(g) => self.grad_values.extend(g.into_data().to_vec::<f32>().unwrap()),
                None => self.stats.extend(t.into_data().to_vec::<f32>().unwrap()),
            }
        }
    }

    #[test]
    fn presets_build_and_bad_configs_are_named() {
        for name in PRESETS {
            SegmentorConfig::preset(name).unwrap().validate().unwrap();
        }
        assert!(SegmentorConfig::preset("daformer-mitb9").unwrap_err().to_string().contains("daformer-mitb9"));
        let mut cfg = tiny();
        cfg.num_classes = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("model.num_classes"));
        assert_eq!(SegmentorConfig::preset("deeplabv2-r101").unwrap().logit_stride(), 8);
        assert_eq!(SegmentorConfig::preset("segformer-mitb0").unwrap().logit_stride(), 4);
    }
}
