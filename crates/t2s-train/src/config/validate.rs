//! The checks of a run configuration's values and of how its settings fit together, made when
//! it is loaded (and again by `train`): messages name the setting and what to do.

use t2s_model::SegmentorConfig;

use super::{EvalWeights, Method, OptimizerKind, Recompute, RunConfig, SetReader, DAFORMER_MIN_FRACTION, DEFAULT_SYNTHETIC_SIZE};

/// The largest `resize` side accepted (eight times Cityscapes' width).
const MAX_RESIZE_SIDE: u32 = 16384;

impl RunConfig {
    /// Checks that the settings fit together; messages name the setting and what to do.
    pub fn validate(&self) -> crate::Result<()> {
        self.check().map_err(crate::TrainError::Usage)
    }

    /// [`validate`](Self::validate), its message alone.
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        // `t2s` without a target set is domain generalisation (method.md §8); `dacs` needs one.
        if self.uda.method == Method::Dacs && self.data.target.is_none() {
            return Err(
                "uda.method = \"dacs\" needs a target set: add a [data.target] table, or use \"source_only\" (or \"t2s\" for domain generalisation)"
                    .into(),
            );
        }
        if self.uda.mic && self.uda.method != Method::SourceOnly && self.data.target.is_none() {
            return Err("uda.mic = true masks target images and learns the teacher's pseudo-labels of them: add a [data.target] table, or set uda.mic = false".into());
        }
        if self.eval.weights == EvalWeights::Teacher && self.uda.method == Method::SourceOnly {
            return Err("eval.weights = \"teacher\" evaluates the EMA teacher of self-training, and uda.method = \"source_only\" has none: set eval.weights = \"student\"".into());
        }
        if self.uda.mic {
            self.uda.mic_mask().validate().map_err(|e| format!("uda.mic_{e}"))?;
            if !(self.uda.mic_lambda.is_finite() && self.uda.mic_lambda >= 0.0) {
                return Err(format!("uda.mic_lambda = {} must be zero or positive (MIC's is 1)", self.uda.mic_lambda));
            }
        }
        if self.data.batch_size == 0 {
            return Err("data.batch_size must be at least 1".into());
        }
        if self.data.crop.contains(&0) {
            return Err("data.crop must be [height, width] with both > 0".into());
        }
        if self.schedule.max_iters == 0 {
            return Err("schedule.max_iters must be at least 1".into());
        }
        if self.uda.adapt_from >= self.schedule.max_iters {
            return Err(format!(
                "uda.adapt_from = {} leaves no iteration to adapt in: it must be below schedule.max_iters = {}",
                self.uda.adapt_from, self.schedule.max_iters
            ));
        }
        self.validate_numbers()?;
        self.validate_terms()?;
        self.validate_sizes()?;
        self.validate_crop()?;
        self.eval.inference.validate("eval.inference")?;
        if let Some(f) = self.data.rcs.min_fraction {
            if !(f > 0.0 && f < 1.0) {
                return Err(format!("data.rcs.min_fraction = {f} must be a share of a label's pixels, between 0 and 1 (DAFormer's is {DAFORMER_MIN_FRACTION:.4})"));
            }
        }
        if !(0.0..1.0).contains(&self.uda.ema_alpha) {
            return Err(format!("uda.ema_alpha = {} must be in [0, 1)", self.uda.ema_alpha));
        }
        if !(self.t2s.temperature.is_finite() && self.t2s.temperature > 0.0) {
            return Err(format!("t2s.temperature = {} must be a positive number", self.t2s.temperature));
        }
        let t = &self.t2s;
        for (key, v) in [("t2s.unreliable_start", t.unreliable_start), ("t2s.unreliable_end", t.unreliable_end)] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{key} = {v} must be a percentage between 0 and 100"));
            }
        }
        if self.uda.method == Method::T2s && self.t2s.contrastive_weight > 0.0 && self.t2s.negatives == 0 {
            return Err("t2s.negatives must be at least 1 when the contrastive loss is on".into());
        }
        // The checks that need the network, when `[model]` names one (training requires it to).
        if let Some(network) = self.network().map_err(|e| format!("[model]: {e}"))? {
            if self.uda.method == Method::T2s {
                self.validate_t2s_network(&network)?;
            }
            self.validate_hrda_crop(&network)?;
            self.validate_feature_distance_crop(&network)?;
            self.validate_min_side(&network)?;
            self.validate_recompute(&network)?;
            // The default is Cityscapes' thing classes: checked only where the distance is on.
            let outside = self.uda.fdist_classes.iter().find(|&&c| c >= network.num_classes);
            if let (Some(id), true) = (outside, self.feature_distance_on()) {
                return Err(format!(
                    "uda.fdist_classes holds {id}, not a class of this network's {} (train ids 0 to {}): list this label space's thing classes, or set uda.fdist_lambda = 0",
                    network.num_classes,
                    network.num_classes - 1
                ));
            }
        }
        if !(0.0..=0.5).contains(&self.t2s.fda_beta) {
            return Err(format!("t2s.fda_beta = {} must be in [0, 0.5]", self.t2s.fda_beta));
        }
        let [lo, hi] = self.t2s.reweight_clamp;
        if !(lo > 0.0 && lo <= hi) {
            return Err(format!("t2s.reweight_clamp = [{lo}, {hi}] must satisfy 0 < min ≤ max"));
        }
        if self.t2s.reweight && self.t2s.reweight_targets.is_empty() {
            return Err("t2s.reweight_targets is empty: list the losses the class weights scale (\"contrastive\", \"cross_entropy\", \"mic\"), or set t2s.reweight = false".into());
        }
        Ok(())
    }

    /// Values outside their meaningful range (a negative learning rate, a momentum of 2, …).
    fn validate_numbers(&self) -> std::result::Result<(), String> {
        let o = &self.optim;
        let s = &self.schedule;
        let positive = [("optim.lr", o.lr), ("optim.head_lr_mult", o.head_lr_mult), ("optim.eps", o.eps)];
        let non_negative = [("optim.weight_decay", o.weight_decay), ("schedule.power", s.power), ("schedule.min_lr", s.min_lr)];
        // Adam's bias correction divides by 1 − βᵗ: a β of 1 divides by zero (torch refuses it).
        for (i, b) in o.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(format!("optim.betas[{i}] = {b} must be in [0, 1) (DAFormer's are [0.9, 0.999])"));
            }
        }
        if o.kind == OptimizerKind::Sgd && o.nesterov && !(o.momentum > 0.0 && o.dampening == 0.0) {
            return Err(format!(
                "optim.nesterov = true needs optim.momentum > 0 and optim.dampening = 0 (as torch.optim.SGD); they are {} and {}",
                o.momentum, o.dampening
            ));
        }
        let unit = [("optim.momentum", o.momentum), ("optim.dampening", o.dampening), ("schedule.warmup_ratio", s.warmup_ratio)];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{key} = {v} must be a positive number"));
            }
        }
        for (key, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} = {v} must be zero or positive"));
            }
        }
        for (key, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} = {v} must be between 0 and 1"));
            }
        }
        if s.min_lr > o.lr {
            return Err(format!("schedule.min_lr = {} is above optim.lr = {}: the schedule would raise the rate", s.min_lr, o.lr));
        }
        // Counts whose 0 would mean nothing at all (the newest checkpoint is always kept, and
        // the loader always prepares the next batch).
        let counts =
            [("run.keep_last", self.run.keep_last), ("data.prefetch", self.data.prefetch), ("run.log_interval", self.run.log_interval)];
        for (key, v) in counts {
            if v == 0 {
                return Err(format!("{key} = 0 must be at least 1"));
            }
        }
        Ok(())
    }

    /// The loss terms' weights, probabilities and statistics: values that would switch a term
    /// off unannounced (a negative weight), never update a statistic (a momentum of 1), or fail
    /// only when the term is first computed, thousands of iterations in.
    fn validate_terms(&self) -> std::result::Result<(), String> {
        let (u, t) = (&self.uda, &self.t2s);
        let weights = [
            ("t2s.contrastive_weight", t.contrastive_weight, "T2S-DA's λ is 1"),
            ("t2s.pseudo_target_ce", t.pseudo_target_ce, "T2S-DA's is 1"),
            ("uda.fdist_lambda", u.fdist_lambda, "DAFormer's is 0.005"),
            ("t2s.reweight_gamma", t.reweight_gamma, "T2S-DA's is 1"),
        ];
        for (key, v, anchor) in weights {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} = {v} must be zero (off) or positive ({anchor})"));
            }
        }
        let probabilities = [
            ("uda.pseudo_threshold", u.pseudo_threshold, "DAFormer's is 0.968"),
            ("data.flip_prob", self.data.flip_prob, "DAFormer's is 0.5"),
            ("t2s.target_query_confidence", t.target_query_confidence as f64, "0.968"),
        ];
        for (key, p, anchor) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{key} = {p} must be a probability in [0, 1] ({anchor})"));
            }
        }
        u.strong_aug().validate().map_err(|e| format!("uda.{e}"))?;
        let [top, bottom] = u.pseudo_label_margin;
        if top + bottom >= 512 {
            return Err(format!(
                "uda.pseudo_label_margin = [{top}, {bottom}] leaves no row of a 512-high crop (it is given for one, and scaled): top + bottom must be below 512 (DAFormer's is [15, 120])"
            ));
        }
        let fractions = [
            ("t2s.label_min_fraction", t.label_min_fraction, "T2S-DA's is 0.75"),
            ("uda.fdist_scale_min_ratio", u.fdist_scale_min_ratio, "DAFormer's is 0.75"),
        ];
        for (key, f, anchor) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{key} = {f} must be a fraction in [0, 1] ({anchor})"));
            }
        }
        // EMA statistics: new = m·old + (1 − m)·batch, so m = 1 would keep the first value for good.
        let momenta = [
            ("t2s.prototype_momentum", t.prototype_momentum as f64),
            ("t2s.distribution_momentum", t.distribution_momentum),
            ("t2s.reweight_momentum", t.reweight_momentum),
        ];
        for (key, m) in momenta {
            if !(0.0..1.0).contains(&m) {
                return Err(format!("{key} = {m} must be in [0, 1): 1 would never update it (T2S-DA's is 0.99)"));
            }
        }
        if !t.reweight_clamp[1].is_finite() {
            return Err(format!("t2s.reweight_clamp = {:?}: the maximum must be finite (the default is [0.1, 10])", t.reweight_clamp));
        }
        let rcs = &self.data.rcs;
        if rcs.enabled && !(rcs.temperature.is_finite() && rcs.temperature > 0.0) {
            return Err(format!("data.rcs.temperature = {} must be a positive number (DAFormer's is 0.01)", rcs.temperature));
        }
        let contrastive = self.uda.method == Method::T2s && t.contrastive_weight > 0.0;
        if contrastive && t.queries == 0 {
            return Err(
                "t2s.queries = 0: the contrastive term needs queries (T2S-DA: 19 × 256 = 4,864), or set t2s.contrastive_weight = 0".into(),
            );
        }
        if self.uda.method == Method::T2s && t.target_queries > 0 && !(contrastive && self.data.target.is_some()) {
            return Err(format!(
                "t2s.target_queries = {} draws queries for the contrastive term from the target: it needs t2s.contrastive_weight > 0 and a [data.target] (or set it to 0)",
                t.target_queries
            ));
        }
        if u.mic && u.mic_block_size > 0 {
            let [h, w] = self.data.crop.map(|v| v as usize);
            if u.mic_mask().grid(h, w) == (1, 1) {
                return Err(format!(
                    "uda.mic_block_size = {} makes one block of data.crop = [{h}, {w}]: each image would be masked whole or not at all; choose at most half the crop's longer side (MIC: 64 for 512×512 crops)",
                    u.mic_block_size
                ));
            }
        }
        Ok(())
    }

    /// Every resize positive (a zero side shrank images to one pixel), the smaller of the two at
    /// most [`MAX_RESIZE_SIDE`].
    fn validate_sizes(&self) -> std::result::Result<(), String> {
        let sets = [("data.source", &self.data.source)].into_iter().chain(self.data.target.iter().map(|t| ("data.target", t)));
        let mut resizes: Vec<(String, [u32; 2])> = sets.filter_map(|(k, s)| s.resize.map(|r| (format!("{k}.resize"), r))).collect();
        resizes.extend(self.data.eval.iter().enumerate().filter_map(|(i, s)| s.resize.map(|r| (format!("data.eval[{i}].resize"), r))));
        resizes.extend(self.eval.resize.map(|r| ("eval.resize".to_string(), r)));
        if let Some((key, [long, short])) = resizes.iter().find(|(_, r)| r.contains(&0)) {
            return Err(format!("{key} = [{long}, {short}] must be [long side, short side] with both above 0 (Cityscapes: [2048, 1024])"));
        }
        // Images are scaled to fit both sides' bounds, so the smaller bounds the result: above
        // this an image's f32 copy alone takes gigabytes, and near u32::MAX the resize's buffer
        // overflows.
        if let Some((key, [long, short])) = resizes.iter().find(|(_, [l, s])| *l.min(s) > MAX_RESIZE_SIDE) {
            return Err(format!(
                "{key} = [{long}, {short}]: the smaller side must be at most {MAX_RESIZE_SIDE} pixels (Cityscapes: [2048, 1024])"
            ));
        }
        Ok(())
    }

    /// A crop larger than a synthetic source's (resized) images in both sides would be mostly
    /// padding; file datasets' sizes are known once they are read (`train::open`).
    fn validate_crop(&self) -> std::result::Result<(), String> {
        let SetReader::Synthetic(set) = &self.data.source.reader else { return Ok(()) };
        self.check_crop(set.size.unwrap_or(DEFAULT_SYNTHETIC_SIZE), self.data.source.resize, "data.source")
    }

    /// Refuses `data.crop` when it is larger than a `[width, height]` image of `setting` (after
    /// the set's `resize = [long, short]`) in both sides.
    pub(crate) fn check_crop(&self, [w, h]: [u32; 2], resize: Option<[u32; 2]>, setting: &str) -> std::result::Result<(), String> {
        let (w, h) = match resize {
            Some([long, short]) => t2s_data::transforms::rescale_size(w, h, long, short),
            None => (w, h),
        };
        let [ch, cw] = self.data.crop;
        if ch > h && cw > w {
            return Err(format!(
                "data.crop = [{ch}, {cw}] is larger than {setting}'s {w}×{h} images in both sides: every crop would be mostly \
                 padding; choose a crop of at most [{h}, {w}] (height, width)"
            ));
        }
        Ok(())
    }

    /// HRDA's crops: the detail crop inside the training crop, which the context pass halves on
    /// the logit grid.
    fn validate_hrda_crop(&self, network: &SegmentorConfig) -> std::result::Result<(), String> {
        let Some(hrda) = &network.hrda else { return Ok(()) };
        let cell = 2 * network.logit_stride();
        let [h, w] = self.data.crop;
        let [dh, dw] = hrda.detail_crop;
        if (h as usize) < dh || (w as usize) < dw {
            return Err(format!(
                "data.crop = [{h}, {w}] is smaller than model.network.hrda.detail_crop = [{dh}, {dw}]: the detail crop is cut from the training crop (HRDA: 512×512 of 1024×1024)"
            ));
        }
        if !(h as usize).is_multiple_of(cell) || !(w as usize).is_multiple_of(cell) {
            return Err(format!(
                "data.crop = [{h}, {w}] must be a multiple of {cell} with HRDA (twice the logit stride), so the context pass at half resolution lines up with the detail crop"
            ));
        }
        Ok(())
    }

    /// A crop that the feature distance's stride divides: DAFormer's feature distance brings the
    /// source labels to the deepest feature by whole blocks; with HRDA that feature is the
    /// context pass's, at half resolution.
    fn validate_feature_distance_crop(&self, network: &SegmentorConfig) -> std::result::Result<(), String> {
        let fd = network.deepest_feature_stride() * if network.hrda.is_some() { 2 } else { 1 };
        let [h, w] = self.data.crop;
        if self.feature_distance_on() && (!(h as usize).is_multiple_of(fd) || !(w as usize).is_multiple_of(fd)) {
            return Err(format!(
                "data.crop = [{h}, {w}] is not a whole multiple of {fd}, the stride of the backbone's deepest feature, which the ImageNet feature distance (uda.fdist_lambda > 0 with model.pretrained) compares: choose a crop divisible by {fd}, or set uda.fdist_lambda = 0"
            ));
        }
        Ok(())
    }

    /// Every input the network is given in training and evaluation (the crop, HRDA's context and
    /// detail crops, sliding windows) at least as large as its backbone takes.
    fn validate_min_side(&self, network: &SegmentorConfig) -> std::result::Result<(), String> {
        let min = network.min_input_side();
        let [h, w] = self.data.crop.map(|v| v as usize);
        let mut inputs = vec![("data.crop", [h, w])];
        if let Some(hrda) = &network.hrda {
            inputs.push(("data.crop (halved for HRDA's context pass)", [h / 2, w / 2]));
            inputs.push(("model.network.hrda.detail_crop", hrda.detail_crop));
        }
        if let crate::inference::InferenceMode::Slide { crop, .. } = &self.eval.inference {
            inputs.push(("eval.inference.crop", *crop));
            if network.hrda.is_some() {
                inputs.push(("eval.inference.crop (halved for HRDA's context pass)", [crop[0] / 2, crop[1] / 2]));
            }
        }
        match inputs.into_iter().find(|(_, [a, b])| *a < min || *b < min) {
            Some((key, [a, b])) => Err(format!(
                "{key} = [{a}, {b}] is too small for this network: its MiT encoder's spatial reductions need inputs of at least {min}×{min} pixels"
            )),
            None => Ok(()),
        }
    }

    /// `train.recompute = "blocks"` reruns MiT blocks: it needs a MiT backbone.
    fn validate_recompute(&self, network: &SegmentorConfig) -> std::result::Result<(), String> {
        if self.train.recompute == Recompute::None {
            return Ok(());
        }
        if !matches!(network.backbone, t2s_model::BackboneConfig::Mit(_)) {
            return Err("train.recompute = \"blocks\" reruns the blocks of a MiT backbone; this network's backbone is a ResNet: set train.recompute = \"none\" (uda.student_passes = \"sequential\" also saves memory)".into());
        }
        Ok(())
    }

    /// `uda.method = "t2s"`'s needs of the network: a projection head, and a crop that the
    /// embedding's stride divides (the source labels are brought to its resolution by whole
    /// blocks, method.md §4).
    fn validate_t2s_network(&self, network: &SegmentorConfig) -> std::result::Result<(), String> {
        if network.projection.is_none() {
            return Err("uda.method = \"t2s\" needs a projection head: add [model.network.projection] (presets have one)".into());
        }
        // HRDA's embedding is its context pass's, at half the resolution.
        let stride = network.logit_stride() * if network.hrda.is_some() { 2 } else { 1 };
        let scale = self.t2s.embedding_scale;
        if scale == 0 || !stride.is_multiple_of(scale) {
            return Err(format!(
                "t2s.embedding_scale = {scale} must divide the embedding's stride {stride} (1 keeps the projection head's resolution)"
            ));
        }
        let stride = stride / scale;
        let [h, w] = self.data.crop;
        if !(h as usize).is_multiple_of(stride) || !(w as usize).is_multiple_of(stride) {
            return Err(format!(
                "data.crop = [{h}, {w}] is not a whole multiple of the embedding's stride {stride}; choose a crop divisible by {stride}"
            ));
        }
        Ok(())
    }
}
