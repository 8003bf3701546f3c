//! Text handling for speech: clause splitting for streaming TTS, script and language detection
//! of transcripts, the checks on what vaak hears and says (`reply_guard`), the sentences it says
//! in its own words (`phrases`), what clients type (`input`), and redaction of personal numbers
//! before anything reaches a log line or the session store.

pub mod clauses;
pub mod codeswitch;
pub mod input;
pub mod normalize;
pub mod phrases;
pub mod redact;
pub mod reply_guard;
pub mod script;
pub mod speech;
pub mod turn_end;
