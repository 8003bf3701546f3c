//! Text handling for speech: clause splitting for streaming TTS, script and language detection
//! of transcripts, and redaction of personal numbers before anything reaches a log line.

pub mod clauses;
pub mod codeswitch;
pub mod normalize;
pub mod redact;
pub mod script;
pub mod speech;
