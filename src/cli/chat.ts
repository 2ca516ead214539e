// `mamba-ts chat --model DIR|ORG/NAME [options]`: a prompt loop on stdin. Each line is a turn,
// wrapped in --template ("{input}" is replaced; default: the line alone); the model's reply streams
// to stdout. The recurrent state is carried from turn to turn, so the history is never read again:
// each turn costs only its own tokens. --state-in/--state-out start from and save a conversation.

import { createInterface } from 'node:readline';
import { fail } from '../core/errors.ts';
import { generate } from '../generate/generate.ts';
import type { Snapshot } from '../generate/snapshot.ts';
import { parse } from './args.ts';
import {
  generateOptions,
  openSession,
  printStats,
  readSnapshot,
  sessionOptions,
  writeSnapshot,
} from './session.ts';

export async function chatCommand(argv: string[]): Promise<void> {
  const values = parse('chat', argv, { ...sessionOptions, template: { type: 'string' } });
  const template = (values.template as string | undefined) ?? '{input}';
  if (!template.includes('{input}')) fail('chat: --template must contain {input}');
  const session = await openSession('chat', values);
  if (session.tokenizer === null) fail(`chat: ${session.dir} has no tokenizer.json`);
  const options = generateOptions('chat', values, session);
  let from: Snapshot | undefined = values['state-in']
    ? readSnapshot(values['state-in'] as string, session)
    : undefined;
  const interactive = process.stdin.isTTY === true;
  const lines = createInterface({ input: process.stdin, terminal: false });
  if (interactive) process.stdout.write('> ');
  for await (const line of lines) {
    const run = generate(session.model, session.tokenizer, [template.replace('{input}', () => line)], {
      ...options,
      from,
    });
    let next = await run.next();
    for (; !next.done; next = await run.next()) process.stdout.write(next.value.text);
    process.stdout.write('\n');
    from = next.value.snapshot;
    if (values.stats) printStats(next.value.stats);
    if (interactive) process.stdout.write('> ');
  }
  if (values['state-out'] !== undefined && from !== undefined)
    writeSnapshot(values['state-out'] as string, from);
}
