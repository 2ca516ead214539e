// Streams text out of token ids as they are generated. The pieces push() returns, followed by
// flush(), add up to tokenizer.decode(all ids) exactly. An unfinished UTF-8 character decodes to
// one U+FFFD at the end of the text, so a trailing U+FFFD is held back until a later token either
// completes it or shows it is real. Only a window of recent ids is decoded (the prefix / read offset
// technique of text-generation-inference): the window restarts after each clean point, keeping the
// ids read since the previous one as context for decoders that look back (Metaspace spaces).
// Leaves out: decoders whose earlier text depends on later tokens (WordPiece space clean-up).

export interface TokenDecoder {
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

const replacement = '\uFFFD';

export class StreamDecoder {
  private window: number[] = [];
  /** window[0, context) was decoded and emitted within an earlier window. */
  private context = 0;
  /** decode(window) and how many of its characters have been emitted. */
  private windowText = '';
  private emitted = 0;
  private emittedText = '';

  constructor(
    private readonly tokenizer: TokenDecoder,
    private readonly options: { skipSpecialTokens?: boolean } = {},
  ) {}

  /** Everything emitted so far. */
  get text(): string {
    return this.emittedText;
  }

  /** Adds one id; returns the text that became final with it (often '', never half a character). */
  push(id: number): string {
    const before = this.windowText;
    this.window.push(id);
    this.windowText = this.decode(this.window);
    const held = this.windowText.endsWith(replacement) ? 1 : 0;
    const piece = this.emit(this.windowText.length - held);
    if (held === 0) {
      // Clean point: the ids after the context become the next window's context.
      this.window = this.window.slice(this.context);
      this.context = this.window.length;
      this.windowText = this.decode(this.window);
      this.emitted = this.windowText.length;
    } else {
      // Held: restart at the new id if the text before it is settled (decoding both parts apart
      // gives the same text), so that a long run of bad bytes does not grow the window.
      const last = this.decode([id]);
      if (last !== '' && before + last === this.windowText) {
        this.window = [id];
        this.context = 0;
        this.windowText = last;
        this.emitted -= before.length;
      }
    }
    return piece;
  }

  /** Ends the stream: returns the held-back text (a U+FFFD that stays one). */
  flush(): string {
    return this.emit(this.windowText.length);
  }

  private emit(end: number): string {
    if (end <= this.emitted) return '';
    const piece = this.windowText.slice(this.emitted, end);
    this.emitted = end;
    this.emittedText += piece;
    return piece;
  }

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, this.options);
  }
}
