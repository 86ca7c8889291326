//! The reference implementations here are plain f64 loops written from the PyTorch
//! definitions (they share no code with the modules); the decode-head tests use them too.

use super::*;
use crate::error::ModelError;
use block::drop_path;
use burn::backend::{Autodiff, Flex};
use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::tensor::TensorData;

type B = Flex;

// ---------------------------------------------------------------------------------------
// Dense f64 arrays and loop reference kernels.
// ---------------------------------------------------------------------------------------

/// Dense row-major f64 array.
#[derive(Clone, Debug)]
pub(crate) struct Nd {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

impl Nd {
    pub(crate) fn zeros(dims: &[usize]) -> Self {
        Self { dims: dims.to_vec(), data: vec![0.0; dims.iter().product()] }
    }

    fn offset(&self, ix: &[usize]) -> usize {
        assert_eq!(ix.len(), self.dims.len());
        ix.iter().zip(&self.dims).fold(0, |acc, (&i, &d)| {
            assert!(i < d, "index {ix:?} out of {:?}", self.dims);
            acc * d + i
        })
    }

    pub(crate) fn at(&self, ix: &[usize]) -> f64 {
        self.data[self.offset(ix)]
    }

    pub(crate) fn set(&mut self, ix: &[usize], v: f64) {
        let o = self.offset(ix);
        self.data[o] = v;
    }

    /// The values of any backend's tensor.
    pub(crate) fn of<Bk: Backend, const D: usize>(t: &Tensor<Bk, D>) -> Self {
        let data = t.to_data().convert::<f32>().to_vec::<f32>().expect("f32 data");
        Self { dims: t.dims().to_vec(), data: data.into_iter().map(f64::from).collect() }
    }

    /// A Flex tensor with these values (rounded to f32).
    pub(crate) fn tensor<const D: usize>(&self) -> Tensor<B, D> {
        let data: Vec<f32> = self.data.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(data, self.dims.clone()), &Default::default())
    }

    /// A parameter holding these values.
    pub(crate) fn param<const D: usize>(&self) -> Param<Tensor<B, D>> {
        Param::from_tensor(self.tensor())
    }

    pub(crate) fn add(&self, other: &Nd) -> Nd {
        assert_eq!(self.dims, other.dims);
        Nd { dims: self.dims.clone(), data: self.data.iter().zip(&other.data).map(|(a, b)| a + b).collect() }
    }

    pub(crate) fn map(&self, f: impl Fn(f64) -> f64) -> Nd {
        Nd { dims: self.dims.clone(), data: self.data.iter().map(|&v| f(v)).collect() }
    }
}

/// Deterministic values uniform in `[-scale, scale]`, exactly representable in f32.
/// Largest absolute difference of `a` from `b`, relative to `b`'s largest magnitude.
pub(crate) fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub(crate) fn rand_nd(dims: &[usize], seed: u64, scale: f64) -> Nd {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = dims.iter().product();
    let data = (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (state >> 40) as f64 / (1u64 << 24) as f64; // [0, 1)
            f64::from(((2.0 * u - 1.0) * scale) as f32)
        })
        .collect();
    Nd { dims: dims.to_vec(), data }
}

/// Asserts `|a − r| ≤ 1e-4·(1 + |r|)` everywhere, and equal shapes.
pub(crate) fn assert_close<Bk: Backend, const D: usize>(actual: &Tensor<Bk, D>, expected: &Nd, what: &str) {
    let a = Nd::of(actual);
    assert_eq!(a.dims, expected.dims, "{what}: shape");
    for (i, (x, y)) in a.data.iter().zip(&expected.data).enumerate() {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what}: element {i}: {x} vs expected {y}");
    }
}

/// `torch.nn.functional.conv2d` on `x: [N, C, H, W]`, `w: [O, C/groups, kh, kw]`.
pub(crate) fn conv2d(x: &Nd, w: &Nd, b: Option<&Nd>, stride: usize, pad: usize, dil: usize, groups: usize) -> Nd {
    let (n, c, h, wd) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let (o, cg, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    assert_eq!(cg * groups, c);
    let oh = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
    let ow = (wd + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    let og = o / groups;
    let mut y = Nd::zeros(&[n, o, oh, ow]);
    for ni in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = b.map_or(0.0, |b| b.data[oc]);
                    for ci in 0..cg {
                        for a in 0..kh {
                            for bb in 0..kw {
                                let yy = (i * stride + a * dil) as isize - pad as isize;
                                let xx = (j * stride + bb * dil) as isize - pad as isize;
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= wd as isize {
                                    continue;
                                }
                                s += x.at(&[ni, g * cg + ci, yy as usize, xx as usize]) * w.at(&[oc, ci, a, bb]);
                            }
                        }
                    }
                    y.set(&[ni, oc, i, j], s);
                }
            }
        }
    }
    y
}

/// `x @ w + b` over the last axis, with Burn's `[in, out]` weight layout.
pub(crate) fn linear(x: &Nd, w: &Nd, b: Option<&Nd>) -> Nd {
    let (din, dout) = (w.dims[0], w.dims[1]);
    assert_eq!(*x.dims.last().unwrap(), din);
    let rows = x.data.len() / din;
    let mut dims = x.dims.clone();
    *dims.last_mut().unwrap() = dout;
    let mut y = Nd::zeros(&dims);
    for r in 0..rows {
        for o in 0..dout {
            let mut s = b.map_or(0.0, |b| b.data[o]);
            for i in 0..din {
                s += x.data[r * din + i] * w.data[i * dout + o];
            }
            y.data[r * dout + o] = s;
        }
    }
    y
}

/// `torch.nn.LayerNorm` over the last axis (biased variance).
pub(crate) fn layer_norm(x: &Nd, g: &Nd, b: &Nd, eps: f64) -> Nd {
    let c = *x.dims.last().unwrap();
    let mut y = x.clone();
    for row in y.data.chunks_mut(c) {
        let mean = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c as f64;
        for (k, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) / (var + eps).sqrt() * g.data[k] + b.data[k];
        }
    }
    y
}

/// `torch.erf` by its Maclaurin series (accurate to ~1e-13 for |x| ≤ 4).
pub(crate) fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// Exact GELU, `x·Φ(x)`.
pub(crate) fn gelu_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Tokens `[N, h·w, C]` → map `[N, C, h, w]`.
pub(crate) fn tokens_to_map(t: &Nd, h: usize, w: usize) -> Nd {
    let (n, l, c) = (t.dims[0], t.dims[1], t.dims[2]);
    assert_eq!(l, h * w);
    let mut y = Nd::zeros(&[n, c, h, w]);
    for ni in 0..n {
        for i in 0..h {
            for j in 0..w {
                for ci in 0..c {
                    y.set(&[ni, ci, i, j], t.at(&[ni, i * w + j, ci]));
                }
            }
        }
    }
    y
}

/// Map `[N, C, h, w]` → tokens `[N, h·w, C]`.
pub(crate) fn map_to_tokens(m: &Nd) -> Nd {
    let (n, c, h, w) = (m.dims[0], m.dims[1], m.dims[2], m.dims[3]);
    let mut y = Nd::zeros(&[n, h * w, c]);
    for ni in 0..n {
        for i in 0..h {
            for j in 0..w {
                for ci in 0..c {
                    y.set(&[ni, i * w + j, ci], m.at(&[ni, ci, i, j]));
                }
            }
        }
    }
    y
}

/// `F.interpolate(x, (oh, ow), mode="bilinear", align_corners=False)` on `[N, C, H, W]`.
pub(crate) fn resize_ref(x: &Nd, oh: usize, ow: usize) -> Nd {
    let (n, c, h, w) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    // Source index pair and weight of the upper one, per output coordinate.
    let taps = |o: usize, input: usize, output: usize| {
        let src = ((o as f64 + 0.5) * input as f64 / output as f64 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        (i0, i1, src - i0 as f64)
    };
    let mut y = Nd::zeros(&[n, c, oh, ow]);
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..oh {
                let (y0, y1, ly) = taps(i, h, oh);
                for j in 0..ow {
                    let (x0, x1, lx) = taps(j, w, ow);
                    let v = (1.0 - ly) * ((1.0 - lx) * x.at(&[ni, ci, y0, x0]) + lx * x.at(&[ni, ci, y0, x1]))
                        + ly * ((1.0 - lx) * x.at(&[ni, ci, y1, x0]) + lx * x.at(&[ni, ci, y1, x1]));
                    y.set(&[ni, ci, i, j], v);
                }
            }
        }
    }
    y
}

/// Concatenation of `[N, C_k, H, W]` maps along the channels.
pub(crate) fn cat_channels(xs: &[Nd]) -> Nd {
    let (n, h, w) = (xs[0].dims[0], xs[0].dims[2], xs[0].dims[3]);
    let c: usize = xs.iter().map(|x| x.dims[1]).sum();
    let mut y = Nd::zeros(&[n, c, h, w]);
    for ni in 0..n {
        let mut base = 0;
        for x in xs {
            for ci in 0..x.dims[1] {
                for i in 0..h {
                    for j in 0..w {
                        y.set(&[ni, base + ci, i, j], x.at(&[ni, ci, i, j]));
                    }
                }
            }
            base += x.dims[1];
        }
    }
    y
}

/// mmcv `ConvModule` in eval mode: conv (no bias) → BatchNorm with running statistics
/// (ε 1e-5) → ReLU, reading the weights of `m`.
pub(crate) fn conv_bn_ref(x: &Nd, m: &crate::nets::conv_bn::ConvBn<B>, pad: usize, dil: usize, groups: usize) -> Nd {
    assert!(m.conv.bias.is_none());
    let y = conv2d(x, &Nd::of(&m.conv.weight.val()), None, 1, pad, dil, groups);
    let (g, b) = (Nd::of(&m.bn.gamma.val()), Nd::of(&m.bn.beta.val()));
    let (mean, var) = (Nd::of(&m.bn.running_mean.value()), Nd::of(&m.bn.running_var.value()));
    let mut out = y.clone();
    let (n, c, h, w) = (y.dims[0], y.dims[1], y.dims[2], y.dims[3]);
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let v = (y.at(&[ni, ci, i, j]) - mean.data[ci]) / (var.data[ci] + 1e-5).sqrt() * g.data[ci] + b.data[ci];
                    out.set(&[ni, ci, i, j], v.max(0.0));
                }
            }
        }
    }
    out
}

/// The heads' `MLP`: per-pixel linear map of `[N, C, H, W]`, reading the weights of `m`.
pub(crate) fn embed_ref(x: &Nd, m: &crate::nets::mlp_embed::MlpEmbed<B>) -> Nd {
    let (h, w) = (x.dims[2], x.dims[3]);
    let (wt, b) = lin(&m.proj);
    tokens_to_map(&linear(&map_to_tokens(x), &wt, Some(&b)), h, w)
}

/// Values of a linear layer: (weight `[in, out]`, bias).
pub(crate) fn lin(l: &Linear<B>) -> (Nd, Nd) {
    (Nd::of(&l.weight.val()), Nd::of(&l.bias.as_ref().expect("biased").val()))
}

fn ln(l: &LayerNorm<B>) -> (Nd, Nd) {
    (Nd::of(&l.gamma.val()), Nd::of(&l.beta.val()))
}

pub(crate) fn conv(c: &Conv2d<B>) -> (Nd, Nd) {
    (Nd::of(&c.weight.val()), Nd::of(&c.bias.as_ref().expect("biased").val()))
}

/// The original `Attention.forward`, written out per head and per query.
fn attention_ref(a: &EfficientAttention<B>, x: &Nd, h: usize, w: usize, heads: usize, sr: usize) -> Nd {
    let (n, l, c) = (x.dims[0], x.dims[1], x.dims[2]);
    let d = c / heads;
    let (wq, bq) = lin(&a.q);
    let (wkv, bkv) = lin(&a.kv);
    let (wp, bp) = lin(&a.proj);
    let q = linear(x, &wq, Some(&bq));
    let src = if sr > 1 {
        let (ws, bs) = conv(a.sr.as_ref().expect("sr conv"));
        let reduced = conv2d(&tokens_to_map(x, h, w), &ws, Some(&bs), sr, 0, 1, 1);
        let (g, b) = ln(a.norm.as_ref().expect("sr norm"));
        layer_norm(&map_to_tokens(&reduced), &g, &b, 1e-5)
    } else {
        x.clone()
    };
    let kv = linear(&src, &wkv, Some(&bkv));
    let lk = kv.dims[1];
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = Nd::zeros(&[n, l, c]);
    for ni in 0..n {
        for hd in 0..heads {
            for li in 0..l {
                let scores: Vec<f64> = (0..lk)
                    .map(|kj| (0..d).map(|e| q.at(&[ni, li, hd * d + e]) * kv.at(&[ni, kj, hd * d + e])).sum::<f64>() * scale)
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = exps.iter().sum();
                for e in 0..d {
                    let v: f64 = (0..lk).map(|kj| exps[kj] / z * kv.at(&[ni, kj, c + hd * d + e])).sum();
                    out.set(&[ni, li, hd * d + e], v);
                }
            }
        }
    }
    linear(&out, &wp, Some(&bp))
}

/// The original `Mlp.forward` (fc1 → DWConv → GELU → fc2).
fn ffn_ref(m: &MixFfn<B>, x: &Nd, h: usize, w: usize) -> Nd {
    let (w1, b1) = lin(&m.fc1);
    let (wd, bd) = conv(&m.dwconv);
    let (w2, b2) = lin(&m.fc2);
    let hidden = w1.dims[1];
    let y = linear(x, &w1, Some(&b1));
    let y = map_to_tokens(&conv2d(&tokens_to_map(&y, h, w), &wd, Some(&bd), 1, 1, 1, hidden));
    linear(&y.map(gelu_ref), &w2, Some(&b2))
}

/// The original `MixVisionTransformer.forward_features`.
fn mit_ref(m: &MixTransformer<B>, cfg: &MitConfig, x: &Nd) -> Vec<Nd> {
    let mut x = x.clone();
    let mut outs = vec![];
    for (i, stage) in m.stages.iter().enumerate() {
        let (wp, bp) = conv(&stage.patch_embed.proj);
        let p = cfg.patch_sizes[i];
        let map = conv2d(&x, &wp, Some(&bp), cfg.strides[i], p / 2, 1, 1);
        let (h, w) = (map.dims[2], map.dims[3]);
        let (g, b) = ln(&stage.patch_embed.norm);
        let mut t = layer_norm(&map_to_tokens(&map), &g, &b, 1e-5);
        for blk in &stage.blocks {
            let (g1, b1) = ln(&blk.norm1);
            let a = attention_ref(&blk.attn, &layer_norm(&t, &g1, &b1, 1e-6), h, w, cfg.num_heads[i], cfg.sr_ratios[i]);
            t = t.add(&a);
            let (g2, b2) = ln(&blk.norm2);
            let f = ffn_ref(&blk.mlp, &layer_norm(&t, &g2, &b2, 1e-6), h, w);
            t = t.add(&f);
        }
        let (g, b) = ln(&stage.norm);
        x = tokens_to_map(&layer_norm(&t, &g, &b, 1e-6), h, w);
        outs.push(x.clone());
    }
    outs
}

// ---------------------------------------------------------------------------------------
// Module helpers.
// ---------------------------------------------------------------------------------------

/// Replaces every float tensor of a module with deterministic, well-scaled values:
/// weights uniform in ±1.5/√fan_in, LayerNorm/BN scales around 1, running variances in
/// [0.5, 1.5], other vectors in ±0.5.
pub(crate) struct Randomize {
    stack: Vec<String>,
    seed: u64,
}

impl Randomize {
    pub(crate) fn apply<M: Module<B>>(module: M, seed: u64) -> M {
        module.map(&mut Randomize { stack: vec![], seed })
    }
}

impl ModuleMapper<B> for Randomize {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims().to_vec();
        self.seed += 1;
        let leaf = self.stack.last().map(String::as_str).unwrap_or("");
        let values = match (leaf, dims.len()) {
            ("gamma", _) => rand_nd(&dims, self.seed, 0.5).map(|v| 1.0 + v),
            ("running_var", _) => rand_nd(&dims, self.seed, 0.5).map(|v| 1.0 + v),
            (_, 1) => rand_nd(&dims, self.seed, 0.5),
            // Linear [in, out].
            (_, 2) => rand_nd(&dims, self.seed, 1.5 / (dims[0] as f64).sqrt()),
            // Conv [out, in/groups, kh, kw].
            (_, _) => rand_nd(&dims, self.seed, 1.5 / (dims[1..].iter().product::<usize>() as f64).sqrt()),
        };
        let tensor = Tensor::from_data(TensorData::new(values.data.iter().map(|&v| v as f32).collect::<Vec<_>>(), dims), &tensor.device());
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Every float tensor's dotted path (enum variant names left out, as PyTorch's keys) and
/// shape, read without initialising lazy parameters.
#[derive(Default)]
pub(crate) struct Shapes {
    stack: Vec<(String, String)>,
    pub entries: Vec<(String, Vec<usize>)>,
}

impl Shapes {
    pub(crate) fn of<Bk: Backend, M: Module<Bk>>(module: &M) -> Vec<(String, Vec<usize>)> {
        let mut v = Shapes::default();
        module.visit(&mut v);
        v.entries
    }
}

impl<Bk: Backend> ModuleVisitor<Bk> for Shapes {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        let path: Vec<&str> = self.stack.iter().filter(|(_, ty)| !ty.starts_with("Enum:")).map(|(n, _)| n.as_str()).collect();
        self.entries.push((path.join("."), param.lazy_shape().to_vec()));
    }
}

fn tiny() -> MitConfig {
    MitConfig {
        embed_dims: [8, 16, 24, 32],
        depths: [2, 1, 1, 2],
        num_heads: [1, 2, 3, 4],
        sr_ratios: [8, 4, 2, 1],
        ..MitConfig::b(0).expect("B0")
    }
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[test]
fn efficient_attention_matches_loop_reference() {
    let device = Default::default();
    // C = 4, 2 heads (d = 2), a 4×3 map (reduced by 2 to 2×1: the remainder is dropped).
    let (dim, heads, h, w) = (4, 2, 4, 3);
    for sr in [1, 2] {
        let mut a = EfficientAttention::<B>::new(dim, heads, sr, &device);
        a.q.weight = rand_nd(&[dim, dim], 1, 1.0).param();
        a.q.bias = Some(rand_nd(&[dim], 2, 0.5).param());
        a.kv.weight = rand_nd(&[dim, 2 * dim], 3, 1.0).param();
        a.kv.bias = Some(rand_nd(&[2 * dim], 4, 0.5).param());
        a.proj.weight = rand_nd(&[dim, dim], 5, 1.0).param();
        a.proj.bias = Some(rand_nd(&[dim], 6, 0.5).param());
        if sr > 1 {
            let sr_conv = a.sr.as_mut().expect("sr conv");
            sr_conv.weight = rand_nd(&[dim, dim, sr, sr], 7, 0.7).param();
            sr_conv.bias = Some(rand_nd(&[dim], 8, 0.5).param());
            let norm = a.norm.as_mut().expect("sr norm");
            norm.gamma = rand_nd(&[dim], 9, 0.5).map(|v| 1.0 + v).param();
            norm.beta = rand_nd(&[dim], 10, 0.5).param();
        } else {
            assert!(a.sr.is_none() && a.norm.is_none());
        }
        let x = rand_nd(&[2, h * w, dim], 11, 1.5);
        let y = a.forward(x.tensor(), h, w);
        assert_close(&y, &attention_ref(&a, &x, h, w, heads, sr), &format!("attention, sr {sr}"));
    }
}

#[test]
fn mix_ffn_matches_loop_reference() {
    let device = Default::default();
    let (dim, hidden, h, w) = (3, 6, 3, 4);
    let mut m = MixFfn::<B>::new(dim, hidden, &device);
    m.fc1.weight = rand_nd(&[dim, hidden], 1, 1.0).param();
    m.fc1.bias = Some(rand_nd(&[hidden], 2, 0.5).param());
    m.dwconv.weight = rand_nd(&[hidden, 1, 3, 3], 3, 0.8).param();
    m.dwconv.bias = Some(rand_nd(&[hidden], 4, 0.5).param());
    m.fc2.weight = rand_nd(&[hidden, dim], 5, 1.0).param();
    m.fc2.bias = Some(rand_nd(&[dim], 6, 0.5).param());
    let x = rand_nd(&[2, h * w, dim], 7, 1.5);
    let y = m.forward(x.tensor(), h, w);
    assert_close(&y, &ffn_ref(&m, &x, h, w), "mix-ffn");
}

#[test]
fn whole_encoder_matches_loop_reference() {
    let device = Default::default();
    // Reduction ratios chosen so that every stage's reduced map has several tokens.
    let cfg = MitConfig { depths: [2, 1, 1, 1], sr_ratios: [2, 2, 1, 1], ..tiny() };
    let m = Randomize::apply(cfg.init::<B>(&device), 100);
    // 35×42 → 9×11 → 5×6 → 3×3 → 2×2 (odd sizes exercise the padding arithmetic).
    let x = rand_nd(&[2, 3, 35, 42], 5, 1.0);
    let outs = m.forward(x.tensor());
    let refs = mit_ref(&m, &cfg, &x);
    assert_eq!(outs.len(), 4);
    for (i, (o, r)) in outs.iter().zip(&refs).enumerate() {
        assert_close(o, r, &format!("stage {}", i + 1));
    }
}

#[test]
fn layer_norm_epsilons_match_the_original() {
    // Rows with variance 1e-6 make ε = 1e-5 and ε = 1e-6 give very different results.
    let m = tiny().init::<B>(&Default::default());
    let check = |norm: &LayerNorm<B>, eps: f64, what: &str| {
        let c = norm.gamma.dims()[0];
        let x = rand_nd(&[1, 2, c], 3, 1.7e-3);
        let (g, b) = ln(norm);
        assert_close(&norm.forward(x.tensor::<3>()), &layer_norm(&x, &g, &b, eps), what);
    };
    for stage in &m.stages {
        check(&stage.patch_embed.norm, 1e-5, "patch_embed.norm");
        check(&stage.norm, 1e-6, "stage norm");
        for blk in &stage.blocks {
            check(&blk.norm1, 1e-6, "norm1");
            check(&blk.norm2, 1e-6, "norm2");
            if let Some(norm) = &blk.attn.norm {
                check(norm, 1e-5, "attn.norm");
            }
        }
    }
}

#[test]
fn tiny_encoder_output_shapes() {
    let m = tiny().init::<B>(&Default::default());
    let shapes = |h: usize, w: usize| -> Vec<[usize; 4]> {
        m.forward(Tensor::<B, 4>::zeros([1, 3, h, w], &Default::default())).iter().map(|t| t.dims()).collect()
    };
    assert_eq!(shapes(64, 96), vec![[1, 8, 16, 24], [1, 16, 8, 12], [1, 24, 4, 6], [1, 32, 2, 3]]);
    // Odd sizes: ⌊(H + 2⌊p/2⌋ − p)/s⌋ + 1 = ⌈H/s⌉ for odd p.
    assert_eq!(shapes(65, 97), vec![[1, 8, 17, 25], [1, 16, 9, 13], [1, 24, 5, 7], [1, 32, 3, 4]]);
}

/// The original `state_dict` of `MixVisionTransformer` (minus the ImageNet `head`), written
/// from its module definitions, with the loader's renames applied; LayerNorm `weight`/`bias`
/// are Burn's `gamma`/`beta` and linear weights are stored transposed (`[in, out]`).
fn original_keys(cfg: &MitConfig) -> Vec<(String, Vec<usize>)> {
    let mut keys = vec![];
    let mut push = |k: String, s: &[usize]| keys.push((k, s.to_vec()));
    let mut cin = cfg.in_channels;
    for i in 0..4 {
        let (c, k, r) = (cfg.embed_dims[i], cfg.patch_sizes[i], cfg.sr_ratios[i]);
        let hid = c * cfg.mlp_ratio;
        let pe = format!("patch_embed{}", i + 1);
        push(format!("{pe}.proj.weight"), &[c, cin, k, k]);
        push(format!("{pe}.proj.bias"), &[c]);
        push(format!("{pe}.norm.weight"), &[c]);
        push(format!("{pe}.norm.bias"), &[c]);
        for j in 0..cfg.depths[i] {
            let b = format!("block{}.{j}", i + 1);
            push(format!("{b}.norm1.weight"), &[c]);
            push(format!("{b}.norm1.bias"), &[c]);
            push(format!("{b}.attn.q.weight"), &[c, c]);
            push(format!("{b}.attn.q.bias"), &[c]);
            push(format!("{b}.attn.kv.weight"), &[2 * c, c]);
            push(format!("{b}.attn.kv.bias"), &[2 * c]);
            push(format!("{b}.attn.proj.weight"), &[c, c]);
            push(format!("{b}.attn.proj.bias"), &[c]);
            if r > 1 {
                push(format!("{b}.attn.sr.weight"), &[c, c, r, r]);
                push(format!("{b}.attn.sr.bias"), &[c]);
                push(format!("{b}.attn.norm.weight"), &[c]);
                push(format!("{b}.attn.norm.bias"), &[c]);
            }
            push(format!("{b}.norm2.weight"), &[c]);
            push(format!("{b}.norm2.bias"), &[c]);
            push(format!("{b}.mlp.fc1.weight"), &[hid, c]);
            push(format!("{b}.mlp.fc1.bias"), &[hid]);
            push(format!("{b}.mlp.dwconv.dwconv.weight"), &[hid, 1, 3, 3]);
            push(format!("{b}.mlp.dwconv.dwconv.bias"), &[hid]);
            push(format!("{b}.mlp.fc2.weight"), &[c, hid]);
            push(format!("{b}.mlp.fc2.bias"), &[c]);
        }
        push(format!("norm{}.weight", i + 1), &[c]);
        push(format!("norm{}.bias", i + 1), &[c]);
        cin = c;
    }
    let norms = ["norm1", "norm2", "norm"];
    let mut renamed: Vec<(String, Vec<usize>)> = keys
        .into_iter()
        .map(|(k, mut shape)| {
            let mut parts: Vec<String> = k.split('.').map(str::to_string).collect();
            for (orig, ours) in [("patch_embed", "patch_embed"), ("block", "blocks"), ("norm", "norm")] {
                if let Some(i) = parts[0].strip_prefix(orig).and_then(|i| i.parse::<usize>().ok()) {
                    parts.splice(0..1, ["stages".to_string(), (i - 1).to_string(), ours.to_string()]);
                    break;
                }
            }
            if let Some(p) = parts.windows(2).position(|w| w[0] == "dwconv" && w[1] == "dwconv") {
                parts.remove(p + 1);
            }
            let n = parts.len();
            let is_norm = norms.contains(&parts[n - 2].as_str());
            let is_linear = ["q", "kv", "proj", "fc1", "fc2"].contains(&parts[n - 2].as_str()) && parts[n - 3] != "patch_embed";
            if is_norm {
                parts[n - 1] = if parts[n - 1] == "weight" { "gamma".into() } else { "beta".into() };
            }
            if is_linear && parts[n - 1] == "weight" {
                shape.reverse();
            }
            (parts.join("."), shape)
        })
        .collect();
    renamed.sort();
    renamed
}

#[test]
fn parameter_paths_match_the_original_checkpoint() {
    for cfg in [tiny(), MitConfig::b(0).expect("B0")] {
        let mut ours = Shapes::of(&cfg.init::<B>(&Default::default()));
        ours.sort();
        assert_eq!(ours, original_keys(&cfg));
    }
}

/// Encoder parameters by hand from the architecture.
fn expected_params(cfg: &MitConfig) -> usize {
    let mut total = 0;
    let mut cin = cfg.in_channels;
    for i in 0..4 {
        let (c, k, r) = (cfg.embed_dims[i], cfg.patch_sizes[i], cfg.sr_ratios[i]);
        let hid = cfg.mlp_ratio * c;
        let patch_embed = (cin * c * k * k + c) + 2 * c;
        let norms = 2 * c + 2 * c; // norm1, norm2
        let attention = (c * c + c) + (c * 2 * c + 2 * c) + (c * c + c) + if r > 1 { c * c * r * r + c + 2 * c } else { 0 };
        let ffn = (c * hid + hid) + (9 * hid + hid) + (hid * c + c);
        total += patch_embed + cfg.depths[i] * (norms + attention + ffn) + 2 * c;
        cin = c;
    }
    total
}

#[test]
fn parameter_counts_of_b0_to_b5() {
    let device = Default::default();
    // SegFormer paper, "encoder parameters" (millions, to one decimal), B1…B5.
    let paper = [None, Some(13.1), Some(24.2), Some(44.0), Some(60.8), Some(81.4)];
    let counted = [3_319_392, 13_151_424, 24_196_288, 44_072_128, 60_842_688, 81_443_008];
    for n in 0..=5 {
        let cfg = MitConfig::b(n).expect("variant");
        cfg.validate().expect("valid");
        let expected = expected_params(&cfg);
        assert_eq!(expected, counted[n], "B{n}");
        // Counted from shapes without initialising (no allocation).
        let lazy: usize = Shapes::of(&cfg.init::<B>(&device)).iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(lazy, expected, "B{n}");
        if let Some(m) = paper[n] {
            assert!((expected as f64 / 1e6 - m).abs() < 0.1, "B{n}: {expected} vs paper {m} M");
        }
    }
    // Burn's own count (initialises the 81 M parameters once).
    let b5 = MitConfig::b(5).expect("B5").init::<B>(&device);
    assert_eq!(b5.num_params(), 81_443_008);
}

#[test]
fn presets_and_validation() {
    let b0 = MitConfig::b(0).expect("B0");
    assert_eq!(b0.out_channels(), [32, 64, 160, 256]);
    assert_eq!(b0.strides, [4, 2, 2, 2]);
    assert_eq!(b0.patch_sizes, [7, 3, 3, 3]);
    assert_eq!(MitConfig::b(5).expect("B5").depths, [3, 6, 40, 3]);
    assert!(matches!(MitConfig::b(6), Err(ModelError::Config(m)) if m.contains("B6")));
    let bad = |cfg: MitConfig, field: &str| match cfg.validate() {
        Err(ModelError::Config(m)) => assert!(m.contains(field), "{m} should name {field}"),
        other => panic!("{field}: expected a configuration error, got {other:?}"),
    };
    bad(MitConfig { embed_dims: [32, 64, 161, 256], ..b0.clone() }, "embed_dims[2]");
    bad(MitConfig { embed_dims: [0, 64, 160, 256], ..b0.clone() }, "embed_dims[0]");
    bad(MitConfig { num_heads: [1, 0, 5, 8], ..b0.clone() }, "num_heads[1]");
    bad(MitConfig { sr_ratios: [8, 4, 2, 0], ..b0.clone() }, "sr_ratios[3]");
    bad(MitConfig { patch_sizes: [0, 3, 3, 3], ..b0.clone() }, "patch_sizes[0]");
    bad(MitConfig { strides: [4, 0, 2, 2], ..b0.clone() }, "strides[1]");
    bad(MitConfig { mlp_ratio: 0, ..b0.clone() }, "mlp_ratio");
    bad(MitConfig { in_channels: 0, ..b0.clone() }, "in_channels = 0: t2s feeds RGB images, so it must be 3");
    bad(MitConfig { in_channels: 4, ..b0.clone() }, "in_channels = 4: t2s feeds RGB images, so it must be 3");
    bad(MitConfig { drop_path_rate: 1.0, ..b0.clone() }, "drop_path_rate");
    bad(MitConfig { drop_path_rate: f64::NAN, ..b0 }, "drop_path_rate");
}

#[test]
fn drop_path_probabilities_grow_linearly_over_all_blocks() {
    let m = tiny().init::<B>(&Default::default());
    let probs: Vec<f64> = m.stages.iter().flat_map(|s| s.blocks.iter().map(|b| b.drop_path)).collect();
    let expected = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1];
    assert_eq!(probs.len(), expected.len());
    for (p, e) in probs.iter().zip(expected) {
        assert!((p - e).abs() < 1e-12, "{probs:?}");
    }
}

#[test]
fn drop_path_drops_whole_samples_only_when_training() {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let y = drop_path(Tensor::<A, 3>::ones([64, 3, 2], &device), 0.25).into_data().to_vec::<f32>().unwrap();
    let mut kept = 0;
    for sample in y.chunks(6) {
        assert!(sample.iter().all(|&v| v == sample[0]), "{sample:?}");
        assert!(sample[0] == 0.0 || (sample[0] - 1.0 / 0.75).abs() < 1e-6, "{sample:?}");
        kept += usize::from(sample[0] != 0.0);
    }
    assert!(kept > 20 && kept < 64, "{kept} of 64 kept at p = 0.25");
    // Inference backend: identity.
    let x = rand_nd(&[4, 3, 2], 1, 1.0);
    assert_close(&drop_path(x.tensor::<3>(), 0.25), &x, "inference drop path");
}

#[test]
fn gelu_is_exact_in_value_and_gradient() {
    let xs = rand_nd(&[41], 3, 4.0);
    // Inference backend (Burn's fused GELU).
    assert_close(&B::gelu_exact(xs.tensor::<1>()), &xs.map(gelu_ref), "gelu");
    // Autodiff backend: t2s's own operation, derivative Φ(x) + x·φ(x).
    type A = Autodiff<Flex>;
    let x = Tensor::<A, 1>::from_inner(xs.tensor::<1>()).require_grad();
    let y = A::gelu_exact(x.clone());
    assert_close(&y, &xs.map(gelu_ref), "gelu (autodiff)");
    let grads = y.sum().backward();
    let g = x.grad(&grads).expect("gradient");
    let d = xs.map(|v| 0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2)) + v * (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt());
    assert_close(&g, &d, "gelu gradient");
}

#[test]
fn the_smallest_input_keeps_a_token_per_reduction() {
    // SegFormer's encoders: a 7×7 stride-4 embedding padded by 3 gives ⌊(29 − 1)/4⌋ + 1 = 8
    // tokens at stage 1, exactly the 8×8 reduction's kernel; 28 gives 7.
    let b0 = MitConfig::b(0).expect("B0");
    assert_eq!(b0.min_input_side(), 29);
    // Without reductions nothing limits the size; a 4×4 first reduction needs 4 tokens: 13.
    assert_eq!(MitConfig { sr_ratios: [1; 4], ..tiny() }.min_input_side(), 1);
    assert_eq!(MitConfig { sr_ratios: [4, 1, 1, 1], ..tiny() }.min_input_side(), 13);
    // At 29×29 every stage runs: 8, 4, 2, 1 tokens a side.
    let m = tiny().init::<B>(&Default::default());
    let outs = m.forward(Tensor::zeros([1, 3, 29, 29], &Default::default()));
    assert_eq!(outs.iter().map(|o| o.dims()[2]).collect::<Vec<_>>(), [8, 4, 2, 1]);
}
