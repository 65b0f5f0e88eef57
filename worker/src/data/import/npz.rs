//! NumPy `.npz` files in Keras's `load_data` convention: `x_train` and
//! `y_train`, optionally `x_test` and `y_test`; images `uint8` N×H×W or
//! N×H×W×C (channels last), labels any unsigned or signed integer type.

use search::InputShape;

use super::archive::Entry;
use super::ImportError;

/// One parsed `.npy` array: its dtype, shape and raw data.
struct Npy<'a> {
    descr: String,
    shape: Vec<usize>,
    data: &'a [u8],
}

fn bad(entry: &str, reason: impl Into<String>) -> ImportError {
    ImportError::Entry {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// The value of `key` in a `.npy` header dict (`'key': value,`).
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

fn parse<'a>(entry: &str, bytes: &'a [u8]) -> Result<Npy<'a>, ImportError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(entry, "not a .npy array (magic \\x93NUMPY)"));
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(bad(
                entry,
                format!(".npy format version {v} is not supported"),
            ))
        }
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad(entry, "the .npy header is cut short"))?;
    let field = |key| {
        header_value(header, key)
            .ok_or_else(|| bad(entry, format!("the .npy header has no `{key}`")))
    };
    let descr = field("descr")?
        .trim_matches(|c| c == '\'' || c == '"')
        .to_owned();
    if field("fortran_order")? != "False" {
        return Err(bad(
            entry,
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape = field("shape")?
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(entry, format!("shape entry `{s}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Npy {
        descr,
        shape,
        data: &bytes[start + len..],
    })
}

/// Images from an `x_*` array: `uint8`, N×H×W or N×H×W×C with C 1 or 3,
/// turned channel-major.
fn images(entry: &str, bytes: &[u8]) -> Result<(InputShape, Vec<u8>), ImportError> {
    let npy = parse(entry, bytes)?;
    if !matches!(npy.descr.as_str(), "|u1" | "<u1" | ">u1") {
        return Err(bad(
            entry,
            format!("images must be uint8, not dtype `{}`", npy.descr),
        ));
    }
    let (n, h, w, c) = match npy.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
        _ => {
            return Err(bad(
                entry,
                format!(
                    "images must be N×H×W or N×H×W×C with C 1 or 3, not {:?}",
                    npy.shape
                ),
            ))
        }
    };
    let size = n
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(c))
        .ok_or_else(|| bad(entry, "the shape overflows"))?;
    if npy.data.len() != size {
        return Err(bad(
            entry,
            format!(
                "{} data bytes for shape {:?} ({size} expected)",
                npy.data.len(),
                npy.shape
            ),
        ));
    }
    let plane = h * w;
    let mut pixels = vec![0u8; size];
    for (i, image) in npy.data.chunks_exact(plane * c).enumerate() {
        let out = &mut pixels[i * plane * c..(i + 1) * plane * c];
        for (p, px) in image.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * plane + p] = v;
            }
        }
    }
    Ok((InputShape::new(c, h, w), pixels))
}

/// Labels from a `y_*` array of any integer type, as `i64`.
fn labels(entry: &str, bytes: &[u8]) -> Result<Vec<i64>, ImportError> {
    let npy = parse(entry, bytes)?;
    let n = match npy.shape[..] {
        [n] | [n, 1] => n,
        _ => {
            return Err(bad(
                entry,
                format!("labels must be a vector, not shape {:?}", npy.shape),
            ))
        }
    };
    let descr = npy.descr.as_str();
    let width = match &descr[1..] {
        "u1" | "i1" => 1,
        "u2" | "i2" => 2,
        "u4" | "i4" => 4,
        "u8" | "i8" => 8,
        _ => {
            return Err(bad(
                entry,
                format!("labels must be integers, not dtype `{descr}`"),
            ))
        }
    };
    if npy.data.len() != n * width {
        return Err(bad(
            entry,
            format!(
                "{} data bytes for {n} labels of {width} bytes",
                npy.data.len()
            ),
        ));
    }
    let big = descr.starts_with('>');
    let signed = descr[1..].starts_with('i');
    Ok(npy
        .data
        .chunks_exact(width)
        .map(|b| {
            let mut buf = [0u8; 8];
            if big {
                buf[8 - width..].copy_from_slice(b);
                buf.reverse();
            } else {
                buf[..width].copy_from_slice(b);
            }
            let raw = u64::from_le_bytes(buf);
            if signed && width < 8 && raw >> (width * 8 - 1) & 1 == 1 {
                (raw | (u64::MAX << (width * 8))) as i64
            } else {
                raw as i64
            }
        })
        .collect())
}

/// Images and raw labels of one split of the `.npz`.
pub(super) type Part = (InputShape, Vec<u8>, Vec<i64>);

/// The train split and, when given, the test split of an `.npz`.
pub(super) fn read(entries: &[Entry]) -> Result<(Part, Option<Part>), ImportError> {
    let find = |name: &str| entries.iter().find(|e| e.name == format!("{name}.npy"));
    let part = |x: &str, y: &str| -> Result<Option<Part>, ImportError> {
        match (find(x), find(y)) {
            (None, None) => Ok(None),
            (Some(_), None) | (None, Some(_)) => Err(ImportError::Format(format!(
                "an .npz needs `{x}` and `{y}` together"
            ))),
            (Some(xe), Some(ye)) => {
                let (shape, pixels) = images(&xe.name, &xe.bytes)?;
                let labels = labels(&ye.name, &ye.bytes)?;
                if labels.len() * shape.channels * shape.height * shape.width != pixels.len() {
                    return Err(ImportError::Format(format!(
                        "`{x}` and `{y}` hold different numbers of images"
                    )));
                }
                Ok(Some((shape, pixels, labels)))
            }
        }
    };
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let train = part("x_train", "y_train")?.ok_or_else(|| {
        ImportError::Format(format!(
            "an .npz needs arrays `x_train` and `y_train` (found {names:?})"
        ))
    })?;
    Ok((train, part("x_test", "y_test")?))
}
