//! Chat messages → prompt tokens, with the model's own chat template.
//!
//! Using the template baked into the GGUF (`tokenizer.chat_template`) is what keeps a model
//! answering sensibly; ChatML is only the fallback for a model that has none or whose template
//! llama.cpp's built-in template engine cannot apply. Templating and tokenising need only the
//! (immutable, thread-safe) model, so HTTP handlers do it and can answer 400 for an oversized
//! prompt before anything is queued for the inference thread.

use std::sync::Arc;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::api::Message;
use crate::slots::Token;

/// Errors while building a prompt.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("message contains a NUL byte")]
    Nul,
    #[error("applying the chat template failed: {0}")]
    Template(String),
    #[error(
        "a prefill must end with a non-empty user message that the chat template keeps verbatim"
    )]
    OpenTurn,
}

/// Applies the chat template and tokenises.
pub struct PromptBuilder {
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    /// Human-readable name of the template in use, for logs.
    pub template_name: String,
}

impl PromptBuilder {
    /// Picks the model's template if it can be applied, else ChatML.
    pub fn new(model: Arc<LlamaModel>) -> Self {
        let probe = || -> Option<Vec<LlamaChatMessage>> {
            Some(vec![
                LlamaChatMessage::new("system".into(), "s".into()).ok()?,
                LlamaChatMessage::new("user".into(), "u".into()).ok()?,
            ])
        };
        let own = model.chat_template(None).ok().filter(|t| {
            probe().is_some_and(|msgs| model.apply_chat_template(t, &msgs, true).is_ok())
        });
        let (template, template_name) = match own {
            Some(t) => (t, "model (GGUF tokenizer.chat_template)".to_owned()),
            None => {
                tracing::warn!("model has no usable chat template; falling back to ChatML");
                // "chatml" is a built-in template name and contains no NUL byte.
                match LlamaChatTemplate::new("chatml") {
                    Ok(t) => (t, "chatml (fallback)".to_owned()),
                    Err(_) => unreachable!("\"chatml\" has no NUL byte"),
                }
            }
        };
        Self {
            model,
            template,
            template_name,
        }
    }

    /// The prompt text for `messages`, ending with the assistant turn's opening.
    pub fn render(&self, messages: &[Message]) -> Result<String, PromptError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| PromptError::Nul)?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| PromptError::Template(e.to_string()))
    }

    /// Tokenises `text` (special tokens such as `<|im_start|>` are parsed), adding BOS only if
    /// the model wants one and the template did not already write it.
    pub fn tokenize(&self, text: &str) -> Vec<Token> {
        let vocab = self.model.vocab();
        let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
        let bos = vocab.bos();
        if tokens.len() >= 2 && tokens[0] == bos && tokens[1] == bos {
            tokens.remove(0);
        }
        tokens.into_iter().map(|LlamaToken(t)| t).collect()
    }

    /// The prompt up to the end of the last (user) message's text, without the template's
    /// end-of-message and assistant-header tokens: what a turn still being spoken shares with
    /// its final prompt, so it can be prefilled while the user talks.
    pub fn build_open_turn(&self, messages: &[Message]) -> Result<Vec<Token>, PromptError> {
        let last = match messages.last() {
            Some(m) if m.role == crate::api::Role::User && !m.content.trim().is_empty() => m,
            _ => return Err(PromptError::OpenTurn),
        };
        let text = self.render(messages)?;
        let end = text
            .rfind(&last.content)
            .map(|at| at + last.content.len())
            .ok_or(PromptError::OpenTurn)?;
        Ok(self.tokenize(&text[..end]))
    }

    /// `render` + `tokenize`.
    pub fn build(&self, messages: &[Message]) -> Result<Vec<Token>, PromptError> {
        Ok(self.tokenize(&self.render(messages)?))
    }
}
