// The byte-level tokenizer used when training without a tokenizer.json: token id = UTF-8 byte
// (vocabulary 0..255, no special tokens). Encoding is done here directly (the bytes of the text);
// `byteTokenizerFiles` writes the same scheme as a tokenizer.json that @huggingface/tokenizers,
// transformers (PreTrainedTokenizerFast) and tokenizers.js load: GPT-2's ByteLevel pre-tokenizer
// and decoder (each byte shown as one printable character) over a BPE with those 256 characters
// as its vocabulary, ordered so that id = byte value, and no merges. With no merges the GPT-2
// regex split cannot change the ids, so every implementation gives the bytes back.

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 onwards. */
function byteChars(): string[] {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(printable ? b : next++));
  }
  return chars;
}

export const BYTE_VOCAB_SIZE = 256;

/** Token ids of `text`: its UTF-8 bytes. */
export function encodeBytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** tokenizer.json and tokenizer_config.json of the byte-level scheme, as file name → contents. */
export function byteTokenizerFiles(): Map<string, string> {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: null,
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(byteChars().map((c, id) => [c, id])),
      merges: [],
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    clean_up_tokenization_spaces: false,
  };
  return new Map([
    ['tokenizer.json', `${JSON.stringify(tokenizer, null, 2)}\n`],
    ['tokenizer_config.json', `${JSON.stringify(config, null, 2)}\n`],
  ]);
}
