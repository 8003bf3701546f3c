//! CTranslate2 Whisper → whisper.cpp ggml converter, in Rust.
//!
//! Why it exists: the only complete multilingual Whisper in a package registry ships in
//! CTranslate2 (faster-whisper) format, while the ASR stage runs whisper.cpp, which reads the
//! ggml layout written by whisper.cpp's own `models/convert-pt-to-ggml.py`. This module reads a
//! CTranslate2 `model.bin` (+ `vocabulary.txt`/`vocabulary.json`), un-fuses CTranslate2's fused
//! attention projections, computes the librosa mel filters (`mel.rs`) and writes that exact
//! layout, streaming one tensor at a time. It works for any CTranslate2 Whisper (tiny … large,
//! multilingual or `.en`): sizes, layer and head counts are read from the model.
//!
//! CTranslate2 `model.bin` (ctranslate2 `specs/model_spec.py` `_serialize`): u32 binary
//! version; strings are u16 length (incl. NUL) + bytes + NUL; spec name; u32 revision; u32
//! variable count; per variable: name, u8 rank, rank × u32 dims, u8 dtype id, u32 byte count,
//! raw little-endian data; then u32 alias count and (alias, target) pairs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use super::ggml_quant::{self, WeightType};
use super::mel::mel_filters;
use super::{HashingWriter, ModelError};

/// `ggml` in hex: the first i32 of a whisper.cpp model file.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// FFT bins of Whisper's 400-point STFT (`n_fft / 2 + 1`).
const N_FFT_BINS: usize = 201;
const EOT: &str = "<|endoftext|>";

/// Element type of a CTranslate2 variable (ids as in ctranslate2 `include/ctranslate2/types.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable of a CTranslate2 model: where its data lies in `model.bin`.
#[derive(Clone, Debug)]
pub struct Ct2Variable {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: Ct2Dtype,
    /// Byte offset of the raw data in the file.
    pub offset: u64,
    pub nbytes: u64,
}

impl Ct2Variable {
    fn elements(&self) -> usize {
        self.dims.iter().product()
    }
    /// Elements per leading-dimension row (1 for scalars and vectors).
    fn row_elems(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
    fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// An index of a CTranslate2 `model.bin`: variable headers only; data is read on demand.
pub struct Ct2Model {
    path: PathBuf,
    pub binary_version: u32,
    pub spec: String,
    pub revision: u32,
    vars: HashMap<String, Ct2Variable>,
    /// Variable names in file order.
    pub order: Vec<String>,
    pub aliases: HashMap<String, String>,
    file: BufReader<File>,
}

fn fmt_err(path: &Path, detail: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl Ct2Model {
    /// Reads the header and the variable index of `path` (skipping over the data).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let f = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let mut file = BufReader::with_capacity(1 << 20, f);
        let io = |e: io::Error| ModelError::io(path, e);
        let binary_version = read_u32(&mut file).map_err(io)?;
        if !(4..=6).contains(&binary_version) {
            return Err(fmt_err(
                path,
                format!(
                    "unsupported CTranslate2 binary version {binary_version} (supported: 4 to 6)"
                ),
            ));
        }
        let spec = read_ct2_string(&mut file).map_err(io)?;
        let revision = read_u32(&mut file).map_err(io)?;
        let n_vars = read_u32(&mut file).map_err(io)?;
        let mut vars = HashMap::new();
        let mut order = Vec::new();
        for _ in 0..n_vars {
            let name = read_ct2_string(&mut file).map_err(io)?;
            let rank = read_u8(&mut file).map_err(io)?;
            let mut dims = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                dims.push(read_u32(&mut file).map_err(io)? as usize);
            }
            let type_id = read_u8(&mut file).map_err(io)?;
            let dtype = Ct2Dtype::from_id(type_id).ok_or_else(|| {
                fmt_err(path, format!("variable {name}: unknown dtype id {type_id}"))
            })?;
            let nbytes = u64::from(read_u32(&mut file).map_err(io)?);
            let offset = file.stream_position().map_err(io)?;
            let var = Ct2Variable {
                name: name.clone(),
                dims,
                dtype,
                offset,
                nbytes,
            };
            if (var.elements() * dtype.size()) as u64 != nbytes {
                return Err(fmt_err(
                    path,
                    format!(
                        "variable {name}: {nbytes} bytes do not fit shape {:?} of {dtype:?}",
                        var.dims
                    ),
                ));
            }
            file.seek_relative(nbytes as i64).map_err(io)?;
            order.push(name.clone());
            vars.insert(name, var);
        }
        let mut aliases = HashMap::new();
        // Aliases exist from binary version 3 on; a truncated file has no count.
        let n_aliases = read_u32(&mut file).map_err(io)?;
        for _ in 0..n_aliases {
            let alias = read_ct2_string(&mut file).map_err(io)?;
            let target = read_ct2_string(&mut file).map_err(io)?;
            aliases.insert(alias, target);
        }
        Ok(Self {
            path: path.to_path_buf(),
            binary_version,
            spec,
            revision,
            vars,
            order,
            aliases,
            file,
        })
    }

    /// The variable `name`, following aliases.
    pub fn var(&self, name: &str) -> Result<&Ct2Variable, ModelError> {
        let mut n = name;
        for _ in 0..8 {
            if let Some(v) = self.vars.get(n) {
                return Ok(v);
            }
            match self.aliases.get(n) {
                Some(t) => n = t,
                None => break,
            }
        }
        Err(fmt_err(&self.path, format!("variable {name} not found")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.var(name).is_ok()
    }

    fn read_bytes(
        &mut self,
        var: &Ct2Variable,
        start: u64,
        len: usize,
    ) -> Result<Vec<u8>, ModelError> {
        let path = self.path.clone();
        let mut buf = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(var.offset + start))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| ModelError::io(&path, e))?;
        Ok(buf)
    }

    /// An integer scalar (e.g. `encoder/num_heads`).
    pub fn read_int(&mut self, name: &str) -> Result<i64, ModelError> {
        let v = self.var(name)?.clone();
        if v.elements() != 1 {
            return Err(fmt_err(&self.path, format!("{name} is not a scalar")));
        }
        let b = self.read_bytes(&v, 0, v.dtype.size())?;
        Ok(match v.dtype {
            Ct2Dtype::I8 => i64::from(b[0] as i8),
            Ct2Dtype::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            Ct2Dtype::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Ct2Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            Ct2Dtype::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32() as i64,
            Ct2Dtype::Bf16 => bf16::from_le_bytes([b[0], b[1]]).to_f32() as i64,
        })
    }

    /// Rows `[row0, row0 + rows)` of a float (or int8 + `weight_scale`) variable as f32.
    pub fn read_rows_f32(
        &mut self,
        name: &str,
        row0: usize,
        rows: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let v = self.var(name)?.clone();
        let re = v.row_elems();
        let raw = self.rows_raw(&v, row0, rows)?;
        Ok(match v.dtype {
            Ct2Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2Dtype::Bf16 => raw
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2Dtype::I8 => {
                // CTranslate2 int8: q = round(w * scale), one scale per output row (or one
                // for the whole tensor), stored next to the weight as `<name>_scale`.
                let scale_name = format!("{name}_scale");
                if !self.has(&scale_name) {
                    return Err(fmt_err(
                        &self.path,
                        format!("{name} is int8 but {scale_name} is missing"),
                    ));
                }
                let sv = self.var(&scale_name)?.clone();
                let scales = if sv.elements() == 1 {
                    vec![self.read_rows_f32(&scale_name, 0, 1)?[0]; rows]
                } else if sv.elements() == v.rows() {
                    self.read_rows_f32(&scale_name, row0, rows)?
                } else {
                    return Err(fmt_err(
                        &self.path,
                        format!(
                            "{scale_name} has {} values for {} rows",
                            sv.elements(),
                            v.rows()
                        ),
                    ));
                };
                raw.iter()
                    .enumerate()
                    .map(|(i, q)| f32::from(*q as i8) / scales[i / re.max(1)])
                    .collect()
            }
            Ct2Dtype::I16 | Ct2Dtype::I32 => {
                return Err(fmt_err(
                    &self.path,
                    format!("{name} is {:?}, not a float tensor", v.dtype),
                ))
            }
        })
    }

    /// Rows of a variable as little-endian f16 bytes (raw copy when already f16).
    pub fn read_rows_f16_bytes(
        &mut self,
        name: &str,
        row0: usize,
        rows: usize,
    ) -> Result<Vec<u8>, ModelError> {
        let v = self.var(name)?.clone();
        if v.dtype == Ct2Dtype::F16 {
            return self.rows_raw(&v, row0, rows);
        }
        let vals = self.read_rows_f32(name, row0, rows)?;
        let mut out = Vec::with_capacity(vals.len() * 2);
        for x in vals {
            out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
        }
        Ok(out)
    }

    fn rows_raw(
        &mut self,
        v: &Ct2Variable,
        row0: usize,
        rows: usize,
    ) -> Result<Vec<u8>, ModelError> {
        if row0 + rows > v.rows() {
            return Err(fmt_err(
                &self.path,
                format!(
                    "{}: rows {row0}..{} out of {}",
                    v.name,
                    row0 + rows,
                    v.rows()
                ),
            ));
        }
        let row_bytes = v.row_elems() * v.dtype.size();
        self.read_bytes(v, (row0 * row_bytes) as u64, rows * row_bytes)
    }
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}
fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}
fn read_i32(r: &mut impl Read) -> io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}
fn read_ct2_string(r: &mut impl Read) -> io::Result<String> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    let mut s = vec![0u8; usize::from(u16::from_le_bytes(b))];
    r.read_exact(&mut s)?;
    if s.last() == Some(&0) {
        s.pop();
    }
    String::from_utf8(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// GPT-2's `bytes_to_unicode` inverse: the printable character each byte was mapped to in
/// byte-level BPE vocabularies, back to the byte. Index = char code (all codes are < 324).
fn byte_decoder() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, u8::try_from(b).ok()?)))
        .collect()
}

/// Decodes one byte-level BPE token (e.g. `"Ġthe"` → `b" the"`); `None` if a character is
/// outside the byte alphabet.
pub fn bpe_token_bytes(token: &str) -> Option<Vec<u8>> {
    thread_local! {
        static DEC: HashMap<char, u8> = byte_decoder();
    }
    DEC.with(|d| token.chars().map(|c| d.get(&c).copied()).collect())
}

/// Reads `vocabulary.json` (a JSON list) or `vocabulary.txt` (one token per line).
fn read_vocabulary(dir: &Path) -> Result<Vec<String>, ModelError> {
    let json = dir.join("vocabulary.json");
    if json.exists() {
        let text = std::fs::read_to_string(&json).map_err(|e| ModelError::io(&json, e))?;
        return serde_json::from_str(&text).map_err(|e| fmt_err(&json, e.to_string()));
    }
    let txt = dir.join("vocabulary.txt");
    let text = std::fs::read_to_string(&txt).map_err(|e| ModelError::io(&txt, e))?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    Ok(lines)
}

/// whisper.cpp hyper-parameters, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhisperHparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// The matrices' type: 1 = f16, 2007 = Q8_0, 2002 = Q4_0 (see [`WeightType::file_ftype`]),
    /// 0 = all f32.
    pub ftype: i32,
}

impl WhisperHparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// Writes the magic and the hparams block.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&GGML_MAGIC.to_le_bytes())?;
        for v in self.as_array() {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Reads the magic and the hparams block.
    pub fn read(r: &mut impl Read) -> io::Result<Self> {
        if read_u32(r)? != GGML_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a ggml file (bad magic)",
            ));
        }
        let mut a = [0i32; 11];
        for v in &mut a {
            *v = read_i32(r)?;
        }
        Ok(Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        })
    }
}

/// What a conversion produced.
#[derive(Clone, Debug)]
pub struct ConvertSummary {
    pub hparams: WhisperHparams,
    pub n_tokens: usize,
    pub n_tensors: usize,
    pub bytes: u64,
    pub sha256: String,
}

impl std::fmt::Display for ConvertSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.hparams;
        write!(
            f,
            "wrote {} bytes: {} tensors, {} tokens, n_vocab {}, {}+{} layers of {}, {} mels; sha256 {}",
            self.bytes,
            self.n_tensors,
            self.n_tokens,
            h.n_vocab,
            h.n_audio_layer,
            h.n_text_layer,
            h.n_audio_state,
            h.n_mels,
            self.sha256
        )
    }
}

/// One output tensor: its whisper.cpp name, CTranslate2 source, row range, PyTorch shape.
struct Plan {
    name: String,
    src: String,
    row0: usize,
    shape: Vec<usize>,
    f32: bool,
}

fn layer_count(model: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| model.has(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")))
        .count()
}

fn dims2(model: &Ct2Model, name: &str) -> Result<(usize, usize), ModelError> {
    let v = model.var(name)?;
    match v.dims.as_slice() {
        [a, b] => Ok((*a, *b)),
        d => Err(fmt_err(
            &model.path,
            format!("{name}: expected 2 dims, found {d:?}"),
        )),
    }
}

/// Builds the tensor list in the order OpenAI's `model_state_dict` (and so
/// `convert-pt-to-ggml.py`) writes them, checking every CTranslate2 shape on the way.
fn plan(model: &Ct2Model, hp: &WhisperHparams) -> Result<Vec<Plan>, ModelError> {
    let mut out = Vec::new();
    let mut add = |name: String, src: String, row0: usize, shape: Vec<usize>, f32: bool| {
        out.push(Plan {
            name,
            src,
            row0,
            shape,
            f32,
        })
    };
    // linear layer (weight [rows, cols] from row r0, bias optional).
    fn linear(
        add: &mut dyn FnMut(String, String, usize, Vec<usize>, bool),
        dst: &str,
        src: &str,
        r0: usize,
        rows: usize,
        cols: usize,
        bias: bool,
    ) {
        add(
            format!("{dst}.weight"),
            format!("{src}/weight"),
            r0,
            vec![rows, cols],
            false,
        );
        if bias {
            add(
                format!("{dst}.bias"),
                format!("{src}/bias"),
                r0,
                vec![rows],
                true,
            );
        }
    }
    fn norm(
        add: &mut dyn FnMut(String, String, usize, Vec<usize>, bool),
        dst: &str,
        src: &str,
        n: usize,
    ) {
        add(
            format!("{dst}.weight"),
            format!("{src}/gamma"),
            0,
            vec![n],
            true,
        );
        add(
            format!("{dst}.bias"),
            format!("{src}/beta"),
            0,
            vec![n],
            true,
        );
    }
    // The block's MLP (fc1 = mlp.0, fc2 = mlp.2) and its layer norm, same in encoder and decoder.
    fn feed_forward(
        add: &mut dyn FnMut(String, String, usize, Vec<usize>, bool),
        dst: &str,
        ffn: &str,
        n_mlp: usize,
        width: usize,
    ) {
        linear(
            add,
            &format!("{dst}.mlp.0"),
            &format!("{ffn}/linear_0"),
            0,
            n_mlp,
            width,
            true,
        );
        linear(
            add,
            &format!("{dst}.mlp.2"),
            &format!("{ffn}/linear_1"),
            0,
            width,
            n_mlp,
            true,
        );
        norm(
            add,
            &format!("{dst}.mlp_ln"),
            &format!("{ffn}/layer_norm"),
            width,
        );
    }

    let d = hp.n_audio_state as usize;
    let n_mels = hp.n_mels as usize;
    add(
        "encoder.positional_embedding".into(),
        "encoder/position_encodings/encodings".into(),
        0,
        vec![hp.n_audio_ctx as usize, d],
        true,
    );
    add(
        "encoder.conv1.weight".into(),
        "encoder/conv1/weight".into(),
        0,
        vec![d, n_mels, 3],
        false,
    );
    add(
        "encoder.conv1.bias".into(),
        "encoder/conv1/bias".into(),
        0,
        vec![d, 1],
        true,
    );
    add(
        "encoder.conv2.weight".into(),
        "encoder/conv2/weight".into(),
        0,
        vec![d, d, 3],
        false,
    );
    add(
        "encoder.conv2.bias".into(),
        "encoder/conv2/bias".into(),
        0,
        vec![d, 1],
        true,
    );
    for i in 0..hp.n_audio_layer as usize {
        let (dst, src) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        let (sa, ffn) = (format!("{src}/self_attention"), format!("{src}/ffn"));
        let qkv = format!("{sa}/linear_0");
        linear(&mut add, &format!("{dst}.attn.query"), &qkv, 0, d, d, true);
        linear(&mut add, &format!("{dst}.attn.key"), &qkv, d, d, d, false);
        linear(
            &mut add,
            &format!("{dst}.attn.value"),
            &qkv,
            2 * d,
            d,
            d,
            true,
        );
        linear(
            &mut add,
            &format!("{dst}.attn.out"),
            &format!("{sa}/linear_1"),
            0,
            d,
            d,
            true,
        );
        norm(
            &mut add,
            &format!("{dst}.attn_ln"),
            &format!("{sa}/layer_norm"),
            d,
        );
        let n_mlp = dims2(model, &format!("{ffn}/linear_0/weight"))?.0;
        feed_forward(&mut add, &dst, &ffn, n_mlp, d);
    }
    norm(&mut add, "encoder.ln_post", "encoder/layer_norm", d);

    let t = hp.n_text_state as usize;
    add(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings".into(),
        0,
        vec![hp.n_text_ctx as usize, t],
        true,
    );
    add(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight".into(),
        0,
        vec![hp.n_vocab as usize, t],
        false,
    );
    for i in 0..hp.n_text_layer as usize {
        let (dst, src) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        let (sa, ca, ffn) = (
            format!("{src}/self_attention"),
            format!("{src}/attention"),
            format!("{src}/ffn"),
        );
        let qkv = format!("{sa}/linear_0");
        linear(&mut add, &format!("{dst}.attn.query"), &qkv, 0, t, t, true);
        linear(&mut add, &format!("{dst}.attn.key"), &qkv, t, t, t, false);
        linear(
            &mut add,
            &format!("{dst}.attn.value"),
            &qkv,
            2 * t,
            t,
            t,
            true,
        );
        linear(
            &mut add,
            &format!("{dst}.attn.out"),
            &format!("{sa}/linear_1"),
            0,
            t,
            t,
            true,
        );
        norm(
            &mut add,
            &format!("{dst}.attn_ln"),
            &format!("{sa}/layer_norm"),
            t,
        );
        let kv = format!("{ca}/linear_1");
        linear(
            &mut add,
            &format!("{dst}.cross_attn.query"),
            &format!("{ca}/linear_0"),
            0,
            t,
            t,
            true,
        );
        linear(
            &mut add,
            &format!("{dst}.cross_attn.key"),
            &kv,
            0,
            t,
            t,
            false,
        );
        linear(
            &mut add,
            &format!("{dst}.cross_attn.value"),
            &kv,
            t,
            t,
            t,
            true,
        );
        linear(
            &mut add,
            &format!("{dst}.cross_attn.out"),
            &format!("{ca}/linear_2"),
            0,
            t,
            t,
            true,
        );
        norm(
            &mut add,
            &format!("{dst}.cross_attn_ln"),
            &format!("{ca}/layer_norm"),
            t,
        );
        let n_mlp = dims2(model, &format!("{ffn}/linear_0/weight"))?.0;
        feed_forward(&mut add, &dst, &ffn, n_mlp, t);
    }
    norm(&mut add, "decoder.ln", "decoder/layer_norm", t);

    // Every source must hold at least the rows we take, with the right row width.
    for p in &out {
        let v = model.var(&p.src)?;
        let want_row: usize = if p.shape.len() == 2 && p.shape[1] == 1 {
            1 // conv bias reshaped [n] → [n, 1]
        } else {
            p.shape.iter().skip(1).product()
        };
        if v.row_elems() != want_row || p.row0 + p.shape[0] > v.rows() {
            return Err(fmt_err(
                &model.path,
                format!(
                    "{} has shape {:?}; cannot take {} as {:?} from row {}",
                    p.src, v.dims, p.name, p.shape, p.row0
                ),
            ));
        }
    }
    Ok(out)
}

fn hparams_of(model: &mut Ct2Model) -> Result<WhisperHparams, ModelError> {
    if model.spec != "WhisperSpec" {
        return Err(fmt_err(
            &model.path,
            format!("not a CTranslate2 Whisper model (spec {:?})", model.spec),
        ));
    }
    let (n_vocab, n_text_state) = dims2(model, "decoder/embeddings/weight")?;
    let (n_audio_ctx, n_audio_state) = dims2(model, "encoder/position_encodings/encodings")?;
    let (n_text_ctx, _) = dims2(model, "decoder/position_encodings/encodings")?;
    let conv1 = model.var("encoder/conv1/weight")?.dims.clone();
    let n_mels = match conv1.as_slice() {
        [_, m, 3] => *m,
        d => {
            return Err(fmt_err(
                &model.path,
                format!("encoder/conv1/weight has shape {d:?}"),
            ))
        }
    };
    let n_audio_head = model.read_int("encoder/num_heads")?;
    let n_text_head = model.read_int("decoder/num_heads")?;
    let n_audio_layer = layer_count(model, "encoder");
    let n_text_layer = layer_count(model, "decoder");
    let to_i32 =
        |v: usize| i32::try_from(v).map_err(|_| fmt_err(&model.path, "dimension too large"));
    Ok(WhisperHparams {
        n_vocab: to_i32(n_vocab)?,
        n_audio_ctx: to_i32(n_audio_ctx)?,
        n_audio_state: to_i32(n_audio_state)?,
        n_audio_head: n_audio_head as i32,
        n_audio_layer: to_i32(n_audio_layer)?,
        n_text_ctx: to_i32(n_text_ctx)?,
        n_text_state: to_i32(n_text_state)?,
        n_text_head: n_text_head as i32,
        n_text_layer: to_i32(n_text_layer)?,
        n_mels: to_i32(n_mels)?,
        ftype: 1,
    })
}

/// Converts the CTranslate2 Whisper model in `ct2_dir` (`model.bin` + `vocabulary.txt` or
/// `vocabulary.json`) into a whisper.cpp ggml file at `out` (written to `out.partial`, then
/// renamed into place), its weight matrices stored as `weights`.
pub fn convert_ct2_whisper(
    ct2_dir: &Path,
    out: &Path,
    weights: WeightType,
) -> Result<ConvertSummary, ModelError> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let f = File::create(&partial).map_err(|e| ModelError::io(&partial, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let summary = convert_ct2_whisper_to_writer(ct2_dir, &mut w, weights)?;
        let f = w
            .into_inner()
            .map_err(|e| ModelError::io(&partial, e.into_error()))?;
        f.sync_all().map_err(|e| ModelError::io(&partial, e))?;
        std::fs::rename(&partial, out).map_err(|e| ModelError::io(out, e))?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// As [`convert_ct2_whisper`], writing the ggml bytes to `w` (hashing them on the way).
pub fn convert_ct2_whisper_to_writer<W: Write>(
    ct2_dir: &Path,
    w: W,
    weights: WeightType,
) -> Result<ConvertSummary, ModelError> {
    let model_path = ct2_dir.join("model.bin");
    let mut model = Ct2Model::open(&model_path)?;
    let hp = WhisperHparams {
        ftype: weights.file_ftype(),
        ..hparams_of(&mut model)?
    };
    let vocab = read_vocabulary(ct2_dir)?;
    // The regular (byte-level BPE) tokens are those before <|endoftext|>: 50,257 for the
    // multilingual vocabulary, 50,256 for the English-only one — what the tiktoken files hold.
    let n_tokens = vocab.iter().position(|t| t == EOT).ok_or_else(|| {
        fmt_err(
            &ct2_dir.join("vocabulary.txt"),
            format!("no {EOT} token in the vocabulary"),
        )
    })?;
    let plan = plan(&model, &hp)?;

    let out_err = |e: io::Error| ModelError::io(Path::new("<ggml output>"), e);
    let mut hw = HashingWriter::new(w);
    hp.write(&mut hw).map_err(out_err)?;

    let n_mels = hp.n_mels as usize;
    let filters = mel_filters(16_000, 400, n_mels);
    let mut buf = Vec::with_capacity(8 + filters.len() * 4);
    buf.extend_from_slice(&(n_mels as i32).to_le_bytes());
    buf.extend_from_slice(&(N_FFT_BINS as i32).to_le_bytes());
    for x in &filters {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    hw.write_all(&buf).map_err(out_err)?;

    hw.write_all(&(n_tokens as i32).to_le_bytes())
        .map_err(out_err)?;
    for tok in &vocab[..n_tokens] {
        let bytes = bpe_token_bytes(tok)
            .ok_or_else(|| fmt_err(ct2_dir, format!("token {tok:?} is not byte-level BPE")))?;
        hw.write_all(&(bytes.len() as i32).to_le_bytes())
            .map_err(out_err)?;
        hw.write_all(&bytes).map_err(out_err)?;
    }

    for p in &plan {
        let rows = p.shape[0];
        // whisper.cpp stores every weight matrix as the file's type; conv kernels (3 dims)
        // stay f16 and vectors f32 whatever it is.
        let matrix = !p.f32 && p.shape.len() == 2;
        let (ttype, data) = if p.f32 {
            let vals = model.read_rows_f32(&p.src, p.row0, rows)?;
            let mut b = Vec::with_capacity(vals.len() * 4);
            for x in vals {
                b.extend_from_slice(&x.to_le_bytes());
            }
            (ggml_quant::GGML_TYPE_F32, b)
        } else if let Some(q) = weights.quantizer().filter(|_| matrix) {
            if p.shape[1] % q.block != 0 {
                return Err(fmt_err(
                    &model_path,
                    format!(
                        "{}: rows of {} values cannot be stored as {weights:?} (blocks of {})",
                        p.name, p.shape[1], q.block
                    ),
                ));
            }
            let vals = model.read_rows_f32(&p.src, p.row0, rows)?;
            (q.ttype, (q.quantize)(&vals))
        } else {
            (
                ggml_quant::GGML_TYPE_F16,
                model.read_rows_f16_bytes(&p.src, p.row0, rows)?,
            )
        };
        let mut head = Vec::with_capacity(12 + 4 * p.shape.len() + p.name.len());
        head.extend_from_slice(&(p.shape.len() as i32).to_le_bytes());
        head.extend_from_slice(&(p.name.len() as i32).to_le_bytes());
        head.extend_from_slice(&ttype.to_le_bytes());
        for d in p.shape.iter().rev() {
            head.extend_from_slice(&(*d as i32).to_le_bytes());
        }
        head.extend_from_slice(p.name.as_bytes());
        hw.write_all(&head).map_err(out_err)?;
        hw.write_all(&data).map_err(out_err)?;
    }
    hw.flush().map_err(out_err)?;
    let (bytes, sha256) = hw.finish();
    Ok(ConvertSummary {
        hparams: hp,
        n_tokens,
        n_tensors: plan.len(),
        bytes,
        sha256,
    })
}

/// A tensor header of a whisper.cpp ggml file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgmlTensorInfo {
    pub name: String,
    /// PyTorch order (outermost first), i.e. the file's dims reversed.
    pub shape: Vec<usize>,
    /// The `ggml_type`: 0 = f32, 1 = f16, 2 = Q4_0, 8 = Q8_0.
    pub ftype: i32,
    pub data_offset: u64,
}

/// Everything in a whisper.cpp ggml file except the tensor data.
#[derive(Clone, Debug)]
pub struct GgmlWhisperInfo {
    pub hparams: WhisperHparams,
    pub n_mel: usize,
    pub n_fft: usize,
    pub mel_filters: Vec<f32>,
    pub tokens: Vec<Vec<u8>>,
    pub tensors: Vec<GgmlTensorInfo>,
}

impl GgmlWhisperInfo {
    pub fn tensor(&self, name: &str) -> Option<&GgmlTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Parses a whisper.cpp ggml model (headers only; tensor data is skipped).
pub fn inspect_ggml(path: &Path) -> Result<GgmlWhisperInfo, ModelError> {
    let f = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut r = BufReader::new(f);
    read_ggml(&mut r).map_err(|e| fmt_err(path, e.to_string()))
}

fn read_ggml(r: &mut (impl Read + Seek)) -> io::Result<GgmlWhisperInfo> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let hparams = WhisperHparams::read(r)?;
    let n_mel = usize::try_from(read_i32(r)?).map_err(|_| bad("negative n_mel"))?;
    let n_fft = usize::try_from(read_i32(r)?).map_err(|_| bad("negative n_fft"))?;
    let mut mel_filters = Vec::with_capacity(n_mel * n_fft);
    for _ in 0..n_mel * n_fft {
        mel_filters.push(f32::from_bits(read_u32(r)?));
    }
    let n_tokens = usize::try_from(read_i32(r)?).map_err(|_| bad("negative token count"))?;
    let mut tokens = Vec::with_capacity(n_tokens);
    for _ in 0..n_tokens {
        let len = usize::try_from(read_i32(r)?).map_err(|_| bad("negative token length"))?;
        let mut t = vec![0u8; len];
        r.read_exact(&mut t)?;
        tokens.push(t);
    }
    let mut tensors = Vec::new();
    loop {
        let n_dims = match read_i32(r) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let name_len = read_i32(r)?;
        let ftype = read_i32(r)?;
        if !(1..=4).contains(&n_dims) || !(1..=4096).contains(&name_len) {
            return Err(bad("corrupt tensor header"));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(usize::try_from(read_i32(r)?).map_err(|_| bad("negative dim"))?);
        }
        dims.reverse();
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name)?;
        let name = String::from_utf8(name).map_err(|_| bad("tensor name is not utf-8"))?;
        let data_offset = r.stream_position()?;
        let nbytes = ggml_quant::tensor_bytes(ftype, dims.iter().product::<usize>())
            .ok_or_else(|| bad("corrupt tensor header"))?;
        let end = r.seek(SeekFrom::Current(nbytes as i64))?;
        let len = r.seek(SeekFrom::End(0))?;
        if end > len {
            return Err(bad("truncated tensor data"));
        }
        r.seek(SeekFrom::Start(end))?;
        tensors.push(GgmlTensorInfo {
            name,
            shape: dims,
            ftype,
            data_offset,
        });
    }
    Ok(GgmlWhisperInfo {
        hparams,
        n_mel,
        n_fft,
        mel_filters,
        tokens,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn bpe_decoding() {
        assert_eq!(bpe_token_bytes("Ġthe").as_deref(), Some(&b" the"[..]));
        assert_eq!(bpe_token_bytes("!").as_deref(), Some(&b"!"[..]));
        assert_eq!(bpe_token_bytes("Ċ").as_deref(), Some(&b"\n"[..]));
        assert_eq!(bpe_token_bytes("").as_deref(), Some(&b""[..]));
        // "åľº" is the BPE spelling of 场 (U+573A) in UTF-8.
        assert_eq!(bpe_token_bytes("åľº"), Some("场".as_bytes().to_vec()));
        assert_eq!(bpe_token_bytes("€"), None);
        let dec = byte_decoder();
        assert_eq!(dec.len(), 256);
    }

    proptest::proptest! {
        /// Any byte string, spelled in GPT-2's byte alphabet, decodes back to itself.
        #[test]
        fn bpe_round_trips_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let enc: HashMap<u8, char> = byte_decoder().into_iter().map(|(c, b)| (b, c)).collect();
            let token: String = bytes.iter().map(|b| enc[b]).collect();
            proptest::prop_assert_eq!(bpe_token_bytes(&token), Some(bytes));
        }
    }

    #[test]
    fn hparams_round_trip() {
        let hp = WhisperHparams {
            n_vocab: 51865,
            n_audio_ctx: 1500,
            n_audio_state: 512,
            n_audio_head: 8,
            n_audio_layer: 6,
            n_text_ctx: 448,
            n_text_state: 512,
            n_text_head: 8,
            n_text_layer: 6,
            n_mels: 80,
            ftype: 1,
        };
        let mut buf = Vec::new();
        hp.write(&mut buf).unwrap();
        assert_eq!(buf.len(), 48);
        assert_eq!(&buf[..4], &[0x6c, 0x6d, 0x67, 0x67]);
        assert_eq!(WhisperHparams::read(&mut Cursor::new(&buf)).unwrap(), hp);
        buf[0] = 0;
        assert!(WhisperHparams::read(&mut Cursor::new(&buf)).is_err());
    }

    /// Builds CTranslate2 `model.bin` files for tests.
    pub(crate) struct Ct2Builder {
        vars: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
        aliases: Vec<(String, String)>,
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Ct2Builder {
        pub(crate) fn new() -> Self {
            Self {
                vars: Vec::new(),
                aliases: Vec::new(),
            }
        }
        fn raw(&mut self, name: &str, dims: &[u32], dtype: u8, data: Vec<u8>) {
            self.vars.push((name.into(), dims.to_vec(), dtype, data));
        }
        /// An f16 tensor whose element k is `seed + k / 1024` (exactly representable).
        fn f16(&mut self, name: &str, dims: &[u32], seed: f32) {
            let n: u32 = dims.iter().product();
            let data = (0..n)
                .flat_map(|k| f16::from_f32(seed + (k % 512) as f32 / 1024.0).to_le_bytes())
                .collect();
            self.raw(name, dims, 4, data);
        }
        fn f32(&mut self, name: &str, dims: &[u32], seed: f32) {
            let n: u32 = dims.iter().product();
            let data = (0..n)
                .flat_map(|k| (seed + k as f32).to_le_bytes())
                .collect();
            self.raw(name, dims, 0, data);
        }
        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&6u32.to_le_bytes());
            put_str(&mut out, "WhisperSpec");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
            for (name, dims, dt, data) in &self.vars {
                put_str(&mut out, name);
                out.push(dims.len() as u8);
                for d in dims {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.push(*dt);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_str(&mut out, a);
                put_str(&mut out, t);
            }
            out
        }
    }

    /// A tiny Whisper: d=8, 2 heads, 1 encoder + 1 decoder layer, 6 tokens, 80 mels.
    /// `int8_fc`: store the encoder mlp.0 weight as int8 + weight_scale.
    fn tiny_whisper(dir: &Path, int8_fc: bool) {
        let d = 8u32;
        let mut b = Ct2Builder::new();
        b.raw("encoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec());
        b.raw("decoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec());
        b.raw("decoder/activation", &[], 1, vec![3]);
        b.f16("encoder/conv1/weight", &[d, 80, 3], 0.0);
        b.f16("encoder/conv1/bias", &[d], 0.5);
        b.f16("encoder/conv2/weight", &[d, d, 3], 0.0);
        b.f16("encoder/conv2/bias", &[d], 0.25);
        b.f32("encoder/position_encodings/encodings", &[12, d], 0.0);
        b.f16("decoder/position_encodings/encodings", &[10, d], 1.0);
        b.f16("decoder/embeddings/weight", &[8, d], 2.0);
        b.aliases.push((
            "decoder/projection/weight".into(),
            "decoder/embeddings/weight".into(),
        ));
        for (side, attn) in [("encoder", false), ("decoder", true)] {
            let l = format!("{side}/layer_0");
            b.f16(
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * d, d],
                0.0,
            );
            b.f32(
                &format!("{l}/self_attention/linear_0/bias"),
                &[3 * d],
                100.0,
            );
            b.f16(&format!("{l}/self_attention/linear_1/weight"), &[d, d], 0.0);
            b.f16(&format!("{l}/self_attention/linear_1/bias"), &[d], 0.0);
            b.f16(&format!("{l}/self_attention/layer_norm/gamma"), &[d], 1.0);
            b.f16(&format!("{l}/self_attention/layer_norm/beta"), &[d], 0.0);
            if attn {
                b.f16(&format!("{l}/attention/linear_0/weight"), &[d, d], 0.0);
                b.f16(&format!("{l}/attention/linear_0/bias"), &[d], 0.0);
                b.f16(&format!("{l}/attention/linear_1/weight"), &[2 * d, d], 3.0);
                b.f32(&format!("{l}/attention/linear_1/bias"), &[2 * d], 200.0);
                b.f16(&format!("{l}/attention/linear_2/weight"), &[d, d], 0.0);
                b.f16(&format!("{l}/attention/linear_2/bias"), &[d], 0.0);
                b.f16(&format!("{l}/attention/layer_norm/gamma"), &[d], 1.0);
                b.f16(&format!("{l}/attention/layer_norm/beta"), &[d], 0.0);
            }
            if int8_fc && !attn {
                let q: Vec<u8> = (0..4 * d * d).map(|k| (k % 100) as i8 as u8).collect();
                b.raw(&format!("{l}/ffn/linear_0/weight"), &[4 * d, d], 1, q);
                let s: Vec<u8> = (0..4 * d).flat_map(|_| 50f32.to_le_bytes()).collect();
                b.raw(&format!("{l}/ffn/linear_0/weight_scale"), &[4 * d], 0, s);
            } else {
                b.f16(&format!("{l}/ffn/linear_0/weight"), &[4 * d, d], 0.0);
            }
            b.f16(&format!("{l}/ffn/linear_0/bias"), &[4 * d], 0.0);
            b.f16(&format!("{l}/ffn/linear_1/weight"), &[d, 4 * d], 0.0);
            b.f16(&format!("{l}/ffn/linear_1/bias"), &[d], 0.0);
            b.f16(&format!("{l}/ffn/layer_norm/gamma"), &[d], 1.0);
            b.f16(&format!("{l}/ffn/layer_norm/beta"), &[d], 0.0);
            b.f16(&format!("{side}/layer_norm/gamma"), &[d], 1.0);
            b.f16(&format!("{side}/layer_norm/beta"), &[d], 0.0);
        }
        std::fs::write(dir.join("model.bin"), b.bytes()).unwrap();
        std::fs::write(
            dir.join("vocabulary.txt"),
            "!\nĠthe\nåľº\n\n<|endoftext|>\n<|startoftranscript|>\n<|en|>\n<|0.00|>\n",
        )
        .unwrap();
    }

    /// The registry's whisper-base, converted by `vaak models fetch` (which checks the result
    /// against the pinned sha256 of this converter's output), has the layout whisper.cpp needs.
    #[test]
    fn fetched_whisper_base_has_whisper_cpp_layout() {
        let out = std::env::var_os("VAAK_TEST_WHISPER_GGML")
            .map(std::path::PathBuf::from)
            .expect(
                "set VAAK_TEST_WHISPER_GGML to the fetched ggml-base-q8_0.bin (scripts/test.sh does)",
            );
        let info = inspect_ggml(&out).unwrap();
        assert_eq!(info.hparams.ftype, WeightType::Q8_0.file_ftype());
        assert_eq!(info.tokens.len(), 50_257);
        let k = info.tensor("encoder.blocks.0.attn.key.weight").unwrap();
        assert_eq!((k.shape.as_slice(), k.ftype), (&[512, 512][..], 8));
        let conv = info.tensor("encoder.conv2.weight").unwrap();
        assert_eq!(conv.ftype, 1, "conv kernels stay f16");
        assert!(info.tensor("encoder.blocks.0.attn.key.bias").is_none());
        assert_eq!(
            info.tensor("decoder.token_embedding.weight").unwrap().shape,
            vec![51865, 512]
        );
        assert_eq!(info.tokens[220], b" ");
        assert_eq!(info.tokens[50256], b"");
    }

    #[test]
    fn ct2_reader_on_synthetic_model() {
        let dir = tempfile::tempdir().unwrap();
        tiny_whisper(dir.path(), false);
        let mut m = Ct2Model::open(&dir.path().join("model.bin")).unwrap();
        assert_eq!(
            (m.binary_version, m.spec.as_str(), m.revision),
            (6, "WhisperSpec", 3)
        );
        assert_eq!(m.read_int("encoder/num_heads").unwrap(), 2);
        let proj = m.var("decoder/projection/weight").unwrap();
        assert_eq!(proj.name, "decoder/embeddings/weight");
        assert_eq!(proj.dims, vec![8, 8]);
        let b = m
            .read_rows_f32("encoder/layer_0/self_attention/linear_0/bias", 8, 2)
            .unwrap();
        assert_eq!(b, vec![108.0, 109.0]);
        let w = m.read_rows_f32("decoder/embeddings/weight", 1, 1).unwrap();
        assert_eq!(w[0], 2.0 + 8.0 / 1024.0);
        assert!(m.var("nope").is_err());
        // Truncated file → clean error.
        let bytes = std::fs::read(dir.path().join("model.bin")).unwrap();
        std::fs::write(dir.path().join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();
        assert!(Ct2Model::open(&dir.path().join("model.bin")).is_err());
    }

    #[test]
    fn converts_synthetic_model() {
        let dir = tempfile::tempdir().unwrap();
        tiny_whisper(dir.path(), true);
        let out = dir.path().join("ggml.bin");
        let e = convert_ct2_whisper(dir.path(), &out, WeightType::Q8_0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be stored as Q8_0"), "{e}");
        let s = convert_ct2_whisper(dir.path(), &out, WeightType::F16).unwrap();
        assert_eq!(s.n_tokens, 4);
        assert_eq!(s.bytes, std::fs::metadata(&out).unwrap().len());
        let info = inspect_ggml(&out).unwrap();
        let hp = info.hparams;
        assert_eq!(
            hp.as_array(),
            [8, 12, 8, 2, 1, 10, 8, 2, 1, 80, 1],
            "n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, f16"
        );
        assert_eq!((info.n_mel, info.n_fft), (80, 201));
        assert_eq!(info.mel_filters, mel_filters(16000, 400, 80));
        assert_eq!(
            info.tokens,
            vec![
                b"!".to_vec(),
                b" the".to_vec(),
                "场".as_bytes().to_vec(),
                vec![]
            ]
        );
        // encoder: pos, conv1 w/b, conv2 w/b, 15 per block (no key bias), ln_post 2;
        // decoder: pos, tok, 24 per block, ln 2.
        assert_eq!(info.tensors.len(), 5 + 15 + 2 + 2 + 24 + 2);
        assert_eq!(info.tensors[0].name, "encoder.positional_embedding");
        let t = |n: &str| {
            info.tensor(n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .clone()
        };
        assert_eq!(
            (
                t("encoder.blocks.0.attn.key.weight").shape,
                t("encoder.blocks.0.attn.key.weight").ftype
            ),
            (vec![8, 8], 1)
        );
        assert!(info.tensor("encoder.blocks.0.attn.key.bias").is_none());
        assert!(info
            .tensor("decoder.blocks.0.cross_attn.key.bias")
            .is_none());
        assert_eq!(t("encoder.conv1.bias").shape, vec![8, 1]);
        assert_eq!(t("encoder.conv1.bias").ftype, 0);
        assert_eq!(t("encoder.conv1.weight").shape, vec![8, 80, 3]);
        assert_eq!(t("decoder.positional_embedding").ftype, 0);
        assert_eq!(t("decoder.token_embedding.weight").shape, vec![8, 8]);
        assert_eq!(t("decoder.blocks.0.mlp.0.weight").shape, vec![32, 8]);
        assert_eq!(t("decoder.ln.bias").ftype, 0);

        let bytes = std::fs::read(&out).unwrap();
        let f32_at = |off: u64, i: usize| {
            let o = off as usize + 4 * i;
            f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap())
        };
        let f16_at = |off: u64, i: usize| {
            let o = off as usize + 2 * i;
            f16::from_le_bytes([bytes[o], bytes[o + 1]]).to_f32()
        };
        // Un-fused biases: query = [0, d), value = [2d, 3d) of the fused QKV bias.
        assert_eq!(
            f32_at(t("encoder.blocks.0.attn.query.bias").data_offset, 0),
            100.0
        );
        assert_eq!(
            f32_at(t("encoder.blocks.0.attn.value.bias").data_offset, 0),
            116.0
        );
        assert_eq!(
            f32_at(t("decoder.blocks.0.cross_attn.value.bias").data_offset, 7),
            215.0
        );
        // key weight = rows [d, 2d) of the fused QKV weight: element 0 is k = 64.
        assert_eq!(
            f16_at(t("encoder.blocks.0.attn.key.weight").data_offset, 0),
            64.0 / 1024.0
        );
        assert_eq!(
            f16_at(t("decoder.blocks.0.cross_attn.value.weight").data_offset, 0),
            3.0 + 64.0 / 1024.0
        );
        // int8 mlp.0: element 5 is q = 5, scale 50 → 0.1 (as f16).
        let v = f16_at(t("encoder.blocks.0.mlp.0.weight").data_offset, 5);
        assert_eq!(v, f16::from_f32(0.1).to_f32());
        assert_eq!(
            f32_at(t("encoder.positional_embedding").data_offset, 9),
            9.0
        );

        // Not Whisper → clear error.
        let mut b = Ct2Builder::new();
        b.f32("x", &[1], 0.0);
        let mut bytes = b.bytes();
        bytes[6..17].copy_from_slice(b"OtherSpec00");
        std::fs::write(dir.path().join("model.bin"), bytes).unwrap();
        let e = convert_ct2_whisper(dir.path(), &out, WeightType::F16)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CTranslate2 Whisper"), "{e}");
    }
}
