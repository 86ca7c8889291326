//! The adaptation method of a run as a type: what each method carries from one iteration to the
//! next exists exactly when the method needs it, so the step never asks whether it is there.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use t2s_model::{Segmentor, SegmentorConfig};

use super::checkpoint::{load_network, TrainingState};
use crate::config::{Method, RunConfig};
use crate::t2s_term::T2sState;
use crate::{Result, TrainError};

/// How the student learns about the target domain.
pub enum Adaptation<B: AutodiffBackend> {
    /// Supervised on the source only.
    SourceOnly,
    /// Mean-teacher self-training (`dacs`), with the T2S-DA terms when `t2s` is set (boxed: it
    /// holds two networks' worth of module structure).
    SelfTraining(Box<SelfTraining<B>>),
}

/// What self-training carries from one iteration to the next.
pub struct SelfTraining<B: AutodiffBackend> {
    /// The EMA teacher (eval mode: BN running statistics, no dropout).
    pub teacher: Segmentor<B::InnerBackend>,
    /// The frozen ImageNet-initialised network of the feature distance, when that term is on.
    pub imagenet_fd: Option<Segmentor<B::InnerBackend>>,
    /// Prototypes, statistics and π of the T2S term (`uda.method = "t2s"`).
    pub t2s: Option<T2sState<B::InnerBackend>>,
}

/// Where a resumed run's saved state is: the checkpoint folder and its `state.json`.
pub struct Resume<'a> {
    pub dir: &'a Path,
    pub state: &'a TrainingState,
}

impl<B: AutodiffBackend> Adaptation<B> {
    /// The method `cfg` (validated) trains 0-based iteration `iter` with (source-only during a
    /// `uda.adapt_from` warm-up), for `student` (already resumed, if resuming: the teacher
    /// shares its parameter ids, which the EMA pairs parameters by); a resumed run's teacher and
    /// T2S state come from `resume`. At the switch the teacher is the student.
    pub fn build(
        cfg: &RunConfig,
        network: &SegmentorConfig,
        student: &Segmentor<B>,
        resume: Option<Resume>,
        iter: usize,
        device: &B::Device,
    ) -> Result<Self> {
        if cfg.uda.method_at(iter) == Method::SourceOnly {
            return Ok(Adaptation::SourceOnly);
        }
        // A checkpoint from the switch itself was written by the warm-up: no teacher yet.
        let resume = resume.filter(|_| iter > cfg.uda.adapt_from);
        let teacher = match &resume {
            Some(r) => load_network(student.valid(), network, r.dir, "teacher", device)?,
            None => student.valid(),
        };
        // The frozen ImageNet network of the feature distance (DAFormer: only with pretrained weights).
        let imagenet_fd = match (cfg.feature_distance_on(), cfg.model.pretrained.as_deref()) {
            (true, Some(p)) => Some(
                crate::load_model_from::<B::InnerBackend>(
                    Some(network.clone()),
                    Some(p),
                    cfg.model.pretrained_prefix.as_deref(),
                    cfg.run.seed,
                    crate::Sources::RUN,
                    device,
                )?
                .model,
            ),
            _ => None,
        };
        let t2s = match cfg.uda.method {
            Method::T2s => {
                let dim = network
                    .projection
                    .as_ref()
                    .map(|p| p.dim)
                    .ok_or_else(|| TrainError::Internal("uda.method = t2s with a network that has no projection head".into()))?;
                Some(match resume.and_then(|r| Some((r.dir, r.state.t2s.as_ref()?))) {
                    // Named with its folder, so that the other checkpoints are offered.
                    Some((dir, saved)) => T2sState::restore(saved, &cfg.t2s, (network.num_classes, dim), device)
                        .map_err(|e| TrainError::Usage(format!("{}: {e}", dir.join("state.json").display())))?,
                    None => T2sState::new(&cfg.t2s, network.num_classes, dim, device),
                })
            }
            _ => None,
        };
        Ok(Adaptation::SelfTraining(Box::new(SelfTraining { teacher, imagenet_fd, t2s })))
    }

    /// The teacher, for checkpoints.
    pub fn teacher(&self) -> Option<&Segmentor<B::InnerBackend>> {
        match self {
            Adaptation::SourceOnly => None,
            Adaptation::SelfTraining(st) => Some(&st.teacher),
        }
    }

    /// The T2S state, for checkpoints.
    pub fn t2s(&self) -> Option<&T2sState<B::InnerBackend>> {
        match self {
            Adaptation::SourceOnly => None,
            Adaptation::SelfTraining(st) => st.t2s.as_ref(),
        }
    }

    /// The T2S state, to fold the student's statistic into.
    pub fn t2s_mut(&mut self) -> Option<&mut T2sState<B::InnerBackend>> {
        match self {
            Adaptation::SourceOnly => None,
            Adaptation::SelfTraining(st) => st.t2s.as_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type AB = Autodiff<Flex>;

    fn config(method: &str) -> (RunConfig, SegmentorConfig) {
        let text = format!(
            "{}[model.network.projection]\ndim = 8\n[uda]\nmethod = \"{method}\"\n\
             [data]\ncrop = [64, 64]\n[data.source]\nkind = \"synthetic\"\n[data.target]\nkind = \"synthetic\"\n",
            crate::config::tests::TINY_RESNET
        );
        let cfg = RunConfig::parse(&text, &[]).unwrap();
        let network = cfg.network().unwrap().unwrap();
        (cfg, network)
    }

    #[test]
    fn each_method_carries_exactly_its_state() {
        let device = Default::default();
        for (method, self_training, t2s) in [("source_only", false, false), ("dacs", true, false), ("t2s", true, true)] {
            let (cfg, network) = config(method);
            let student = network.init::<AB>(&device).unwrap();
            let built = Adaptation::<AB>::build(&cfg, &network, &student, None, 0, &device).unwrap();
            assert_eq!((built.teacher().is_some(), built.t2s().is_some()), (self_training, t2s), "{method}");
            if let Adaptation::SelfTraining(st) = &built {
                // No pretrained weights: no ImageNet network for the feature distance.
                assert!(st.imagenet_fd.is_none(), "{method}");
            }
            // The T2S prototypes have the projection head's size.
            if let Some(t) = built.t2s() {
                assert_eq!(t.prototypes.prototypes().dims(), [19, 8]);
            }
        }
    }
}
