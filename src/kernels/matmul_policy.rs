//! Which matmul variant runs which product: one per shape class of the output, chosen per adapter by
//! the tuner (the `tune` module), so a 10-column classifier output, a 512x784 layer and a 4096^2 product
//! each get the kernel that is fastest for products like them.

use super::matmul::MatmulVariant;

/// A product's shape class, by its output C[M, N].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeClass {
    /// A side under 64: a code layer, a classifier's outputs, a small batch's weight gradient.
    Narrow,
    /// Both sides 64 or more, fewer than 1024x1024 outputs: the dense layers of the presets.
    Wide,
    /// 1024x1024 outputs or more.
    Large,
}

impl ShapeClass {
    /// The three classes, smallest first.
    pub const ALL: [ShapeClass; 3] = [ShapeClass::Narrow, ShapeClass::Wide, ShapeClass::Large];

    /// The class of an output `C[m, n]`: `Narrow` if a side is under 64, else `Large` from 2^20
    /// elements, else `Wide`.
    pub fn of(m: usize, n: usize) -> ShapeClass {
        if m.min(n) < 64 {
            ShapeClass::Narrow
        } else if m * n >= 1 << 20 {
            ShapeClass::Large
        } else {
            ShapeClass::Wide
        }
    }

    /// `narrow`, `wide` or `large` (the policy's names, and the tuner cache's keys).
    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Narrow => "narrow",
            ShapeClass::Wide => "wide",
            ShapeClass::Large => "large",
        }
    }

    /// The M x N x K the tuner times for this class (its three products: forward, input and weight
    /// gradient forms).
    pub fn tuning_shape(self) -> [usize; 3] {
        match self {
            ShapeClass::Narrow => [256, 32, 256],
            ShapeClass::Wide => [256, 256, 256],
            ShapeClass::Large => [1024, 1024, 128],
        }
    }
}

/// The variant for each shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MatmulPolicy {
    /// For outputs with a side under 64.
    pub narrow: MatmulVariant,
    /// For outputs with both sides 64 or more and fewer than 2^20 elements.
    pub wide: MatmulVariant,
    /// For outputs of 2^20 elements (1024x1024) or more.
    pub large: MatmulVariant,
}

impl MatmulPolicy {
    /// One variant for every product (`AEGPU_MATMUL`, tests).
    pub fn uniform(v: MatmulVariant) -> MatmulPolicy {
        MatmulPolicy { narrow: v, wide: v, large: v }
    }

    /// The variant chosen for `class`.
    pub fn class(&self, class: ShapeClass) -> MatmulVariant {
        match class {
            ShapeClass::Narrow => self.narrow,
            ShapeClass::Wide => self.wide,
            ShapeClass::Large => self.large,
        }
    }

    /// The variant for a product whose output is M x N.
    pub fn pick(&self, m: usize, n: usize) -> MatmulVariant {
        self.class(ShapeClass::of(m, n))
    }

    /// `reg` when uniform, else `narrow=reg,wide=subgroup,large=sgemm128x128` (checkpoints record it).
    pub fn name(&self) -> String {
        if *self == MatmulPolicy::uniform(self.wide) {
            return self.wide.name();
        }
        ShapeClass::ALL
            .iter()
            .map(|&c| format!("{}={}", c.name(), self.class(c).name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl MatmulPolicy {
    /// The inverse of [`MatmulPolicy::name`].
    pub fn parse(name: &str) -> Option<MatmulPolicy> {
        if !name.contains('=') {
            return MatmulVariant::parse(name).map(MatmulPolicy::uniform);
        }
        let mut classes = [None; 3];
        for entry in name.split(',') {
            let (class, variant) = entry.split_once('=')?;
            let at = ShapeClass::ALL.iter().position(|c| c.name() == class)?;
            classes[at] = Some(MatmulVariant::parse(variant)?);
        }
        Some(MatmulPolicy { narrow: classes[0]?, wide: classes[1]?, large: classes[2]? })
    }
}

impl From<MatmulVariant> for MatmulPolicy {
    fn from(v: MatmulVariant) -> MatmulPolicy {
        MatmulPolicy::uniform(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_output_shape() {
        assert_eq!(ShapeClass::of(256, 10), ShapeClass::Narrow);
        assert_eq!(ShapeClass::of(2, 784), ShapeClass::Narrow);
        assert_eq!(ShapeClass::of(64, 64), ShapeClass::Wide);
        assert_eq!(ShapeClass::of(256, 784), ShapeClass::Wide);
        assert_eq!(ShapeClass::of(1024, 1024), ShapeClass::Large);
        assert_eq!(ShapeClass::of(4096, 256), ShapeClass::Large);
        for c in ShapeClass::ALL {
            let [m, n, _] = c.tuning_shape();
            assert_eq!(ShapeClass::of(m, n), c, "{c:?}'s tuning shape is in its class");
        }
    }

    #[test]
    fn names() {
        assert_eq!(MatmulPolicy::uniform(MatmulVariant::Reg).name(), "reg");
        let p = MatmulPolicy { narrow: MatmulVariant::Reg, ..MatmulPolicy::uniform(MatmulVariant::Subgroup) };
        assert_eq!(p.name(), "narrow=reg,wide=subgroup,large=subgroup");
        assert_eq!(p.pick(256, 10), MatmulVariant::Reg);
        assert_eq!(p.pick(256, 512), MatmulVariant::Subgroup);
        assert_eq!(MatmulPolicy::parse(&p.name()), Some(p));
        assert_eq!(MatmulPolicy::parse("sgemm64x64"), Some(MatmulPolicy::uniform(MatmulVariant::Sgemm64x64)));
        for bad in ["", "fast", "narrow=reg,wide=subgroup", "narrow=reg,wide=x,large=reg", "tall=reg"] {
            assert_eq!(MatmulPolicy::parse(bad), None, "{bad:?}");
        }
    }
}
