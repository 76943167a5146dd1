//! Whether a chunk is all fill value, as zarr-python judges it before it erases the chunk
//! instead of storing it: `np.array_equal(chunk, fill, equal_nan=True)`, so floats compare as
//! numbers (every NaN equals every NaN, -0.0 equals 0.0) and everything else byte for byte;
//! except that newer zarr-python versions tell -0.0 from a float fill value of 0.0 (they
//! compare bits when the fill is a zero), which the caller says.

/// How elements compare, from numpy's dtype kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compare {
    /// Byte for byte (integers, booleans, dates).
    Bytes,
    /// IEEE floats of 2, 4 or 8 bytes; with `signed_zeros`, a fill value of ±0 is
    /// compared bit for bit.
    Float {
        /// -0.0 and 0.0 differ when the fill value is a zero.
        signed_zeros: bool,
    },
    /// Complex numbers: two IEEE floats, NaN when either part is.
    Complex,
}

/// What an IEEE float is, for comparing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Nan,
    Zero,
    Other,
}

/// The class of the float in `bytes` (native order); None for a width that is not IEEE
/// binary16, binary32 or binary64.
fn class(bytes: &[u8]) -> Option<Class> {
    let (bits, exponent, mantissa): (u64, u64, u64) = match bytes.len() {
        2 => (
            u64::from(u16::from_ne_bytes(bytes.try_into().ok()?)),
            0x7c00,
            0x03ff,
        ),
        4 => (
            u64::from(u32::from_ne_bytes(bytes.try_into().ok()?)),
            0x7f80_0000,
            0x007f_ffff,
        ),
        8 => (
            u64::from_ne_bytes(bytes.try_into().ok()?),
            0x7ff0_0000_0000_0000,
            0x000f_ffff_ffff_ffff,
        ),
        _ => return None,
    };
    Some(if bits & exponent == exponent && bits & mantissa != 0 {
        Class::Nan
    } else if bits & (exponent | mantissa) == 0 {
        Class::Zero
    } else {
        Class::Other
    })
}

impl Compare {
    /// The comparison for numpy's dtype kind (`"f"`, `"c"`, …) and element size; floats of
    /// a width that is not IEEE's (`longdouble`) compare byte for byte. `signed_zeros`: see
    /// [`Compare::Float`].
    pub(super) fn for_kind(kind: &str, itemsize: usize, signed_zeros: bool) -> Self {
        match (kind, itemsize) {
            ("f", 2 | 4 | 8) => Self::Float { signed_zeros },
            ("c", 4 | 8 | 16) => Self::Complex,
            _ => Self::Bytes,
        }
    }

    /// Whether elements `a` and `b` (of the same size) are equal.
    fn same(self, a: &[u8], b: &[u8]) -> bool {
        if a == b {
            return true;
        }
        let float = |x: &[u8], y: &[u8]| {
            matches!(
                (class(x), class(y)),
                (Some(Class::Nan), Some(Class::Nan)) | (Some(Class::Zero), Some(Class::Zero))
            )
        };
        match self {
            Self::Bytes => false,
            Self::Float { .. } => float(a, b),
            Self::Complex => {
                let half = a.len() / 2;
                let (ar, ai) = a.split_at(half);
                let (br, bi) = b.split_at(half);
                let nan = |x: &[u8]| class(x) == Some(Class::Nan);
                let (a_nan, b_nan) = (nan(ar) || nan(ai), nan(br) || nan(bi));
                if a_nan || b_nan {
                    return a_nan && b_nan;
                }
                (ar == br || float(ar, br)) && (ai == bi || float(ai, bi))
            }
        }
    }

    /// Whether every element of `data` (elements of `fill.len()` bytes) equals `fill`.
    pub(super) fn all_fill(self, data: &[u8], fill: &[u8]) -> bool {
        let compare = match self {
            Self::Float { signed_zeros: true } if class(fill) == Some(Class::Zero) => Self::Bytes,
            other => other,
        };
        !fill.is_empty()
            && data.len().is_multiple_of(fill.len())
            && data.chunks_exact(fill.len()).all(|v| compare.same(v, fill))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    fn f64s(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn floats_compare_as_numpy_compares_them_with_equal_nan() {
        let f = Compare::for_kind("f", 4, false);
        assert_eq!(
            f,
            Compare::Float {
                signed_zeros: false
            }
        );
        let nan = f32s(&[f32::NAN]);
        // NaNs of other payloads and signs, as computations leave them.
        let other_nans = f32s(&[
            -f32::NAN,
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xffff_ffff),
        ]);
        assert!(f.all_fill(&other_nans, &nan));
        assert!(f.all_fill(&f32s(&[-0.0, 0.0]), &f32s(&[0.0])));
        assert!(!f.all_fill(&f32s(&[0.0, f32::NAN]), &f32s(&[0.0])));
        assert!(
            !f.all_fill(&f32s(&[f32::INFINITY]), &nan),
            "infinity is not NaN"
        );
        assert!(!f.all_fill(&f32s(&[1.0, 1.5]), &f32s(&[1.0])));
        assert!(f.all_fill(&f64s(&[-f64::NAN, f64::NAN]), &f64s(&[f64::NAN])));
        // binary16: 0x7e00 is a NaN, 0x8000 is -0, 0x7c00 is infinity.
        let h = |bits: &[u16]| {
            bits.iter()
                .flat_map(|b| b.to_ne_bytes())
                .collect::<Vec<u8>>()
        };
        let half = Compare::for_kind("f", 2, false);
        assert!(half.all_fill(&h(&[0x7e01, 0xfe00]), &h(&[0x7e00])));
        assert!(half.all_fill(&h(&[0x8000]), &h(&[0x0000])));
        assert!(!half.all_fill(&h(&[0x7c00]), &h(&[0x7e00])));
    }

    #[test]
    fn with_signed_zeros_a_zero_fill_is_compared_bit_for_bit() {
        let f = Compare::for_kind("f", 4, true);
        assert!(!f.all_fill(&f32s(&[0.0, -0.0]), &f32s(&[0.0])));
        assert!(f.all_fill(&f32s(&[0.0, 0.0]), &f32s(&[0.0])));
        assert!(!f.all_fill(&f32s(&[0.0]), &f32s(&[-0.0])));
        // Other fill values still compare as numbers.
        assert!(f.all_fill(&f32s(&[-f32::NAN, f32::NAN]), &f32s(&[f32::NAN])));
    }

    #[test]
    fn complex_numbers_are_nan_when_either_part_is() {
        let c = Compare::for_kind("c", 16, true);
        assert_eq!(c, Compare::Complex);
        let fill = f64s(&[f64::NAN, 0.0]);
        assert!(c.all_fill(&f64s(&[1.0, f64::NAN, -f64::NAN, 5.0]), &fill));
        assert!(!c.all_fill(&f64s(&[1.0, 2.0]), &fill));
        let zero = f64s(&[0.0, 0.0]);
        assert!(c.all_fill(&f64s(&[-0.0, 0.0, 0.0, -0.0]), &zero));
        assert!(!c.all_fill(&f64s(&[0.0, 1.0]), &zero));
        // Even where float zeros are told apart, complex zeros are not (as in zarr-python).
        assert!(Compare::for_kind("c", 8, true).all_fill(&f32s(&[-0.0, -0.0]), &f32s(&[0.0, 0.0])));
    }

    #[test]
    fn everything_else_compares_byte_for_byte() {
        assert_eq!(Compare::for_kind("i", 4, false), Compare::Bytes);
        assert_eq!(
            Compare::for_kind("f", 16, false),
            Compare::Bytes,
            "longdouble"
        );
        let b = Compare::Bytes;
        // As integers these are not floats: 0x80000000 is not "-0".
        assert!(!b.all_fill(&f32s(&[-0.0]), &f32s(&[0.0])));
        assert!(b.all_fill(&[7, 7, 7], &[7]));
        assert!(!b.all_fill(&[7, 7, 8], &[7]));
        assert!(!b.all_fill(&[7, 7, 7], &[]), "no fill element");
        assert!(!b.all_fill(&[7, 7, 7], &[7, 7]), "not whole elements");
    }
}
