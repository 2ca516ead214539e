// `mamba-ts chat` with lines piped to stdin (one child process per command), on gen-mamba2-2k.
// Chat reads each line as a turn (wrapped in --template, by default the line alone) and streams the
// reply, then a newline; the recurrent state goes on from turn to turn. Shown here:
// - the second reply is what `generate` gives continuing from the state after the first turn
//   (generate --state-out after turn 1, then --state-in with the second line), and the token
//   history equals a from-scratch generate over the concatenated ids;
// - the same with seeded sampling (the sampler's position is carried too);
// - chat --state-out, then a new chat --state-in goes on with the conversation exactly;
// - a line is taken literally, `$` patterns included.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { decodeSnapshot } from '../../src/generate/snapshot.ts';
import { Tokenizer } from '../../src/io/tokenizer.ts';
import { assertOk, assertOneLineError, type CliResult, cli, tmpRoot } from '../helpers/cli.ts';
import { fixture } from '../helpers/fixtures.ts';

/** Runs `mamba-ts chat ...args` with `input` on stdin. */
const chat = (args: string[], input: string): Promise<CliResult> => cli(['chat', ...args], input);

const tmp = tmpRoot('chat');
const file = (name: string) => path.join(tmp, name);
const model = fixture('hf', 'gen-mamba2-2k');
const tokenizer = Tokenizer.fromDir(model);
const readState = (name: string) => decodeSnapshot(fs.readFileSync(file(name)), name);

const [line1, line2, line3] = ['def f(x):', '    return x + 1', 'The quick brown fox'];
const greedy = ['--model', model, '--max-new-tokens', '12', '--greedy'];
const sampled = ['--model', model, '--max-new-tokens', '12', '--temperature', '0.8', '--seed', '3'];
sampled.push('--repetition-penalty', '1.2');

// Everything that does not wait for another command starts now.
const runs = {
  chat2: chat([...greedy, '--state-out', file('chat2.state')], `${line1}\n${line2}\n`),
  chat3: chat(greedy, `${line1}\n${line2}\n${line3}\n`),
  turn1: cli(['generate', ...greedy, '--prompt', line1, '--state-out', file('turn1.state')]),
  sampledChat: chat([...sampled, '--state-out', file('sampled-chat.state')], `${line1}\n${line2}\n`),
  sampledTurn1: cli(['generate', ...sampled, '--prompt', line1, '--state-out', file('sampled1.state')]),
};

describe('chat carries the state from turn to turn', { concurrency: true }, () => {
  // Turn 2 by generate, from the state generate saved after turn 1.
  const turn2 = runs.turn1.then(() =>
    cli(['generate', ...greedy, '--state-in', file('turn1.state'), '--prompt', line2]),
  );
  // The whole history from scratch: turn 1's ids (prompt and reply) and the second line's.
  const scratch = runs.turn1.then(() => {
    const ids = [...readState('turn1.state').rows[0].ids, ...tokenizer.encode(line2)];
    return cli(['generate', ...greedy, '--prompt-ids', ids.join(), '--format', 'ids']);
  });
  const sampledTurn2 = runs.sampledTurn1.then(() =>
    cli(['generate', ...sampled, '--state-in', file('sampled1.state'), '--prompt', line2]),
  );
  // A new chat that starts from the state the two-line chat saved.
  const resumed = runs.chat2.then(() => chat([...greedy, '--state-in', file('chat2.state')], `${line3}\n`));

  /** generate's stdout is the echoed prompt then the reply. */
  const reply = (stdout: string, prompt: string) => {
    assert.ok(stdout.startsWith(prompt), JSON.stringify(stdout));
    return stdout.slice(prompt.length);
  };

  test('two lines: exit 0, each reply and a newline; the second reply is generate --state-in after turn 1', async () => {
    const reply1 = reply(assertOk(await runs.turn1), line1);
    const reply2 = reply(assertOk(await turn2), line2);
    assert.ok(reply1.length > 0 && reply2.length > 0);
    assert.notEqual(reply2, reply1);
    assert.equal(assertOk(await runs.chat2), `${reply1}\n${reply2}\n`);
  });

  test("the chat's token history equals a from-scratch generate over the concatenated ids", async () => {
    await Promise.all([runs.turn1, runs.chat2]);
    const state = readState('turn1.state');
    const history = readState('chat2.state').rows[0].ids;
    const ids = JSON.parse(assertOk(await scratch)) as number[];
    assert.deepEqual(history, ids);
    const head = [...state.rows[0].ids, ...tokenizer.encode(line2)];
    assert.deepEqual(ids.slice(0, head.length), head);
    assert.equal(ids.length, head.length + 12);
    // And its text is the second reply.
    const reply2 = reply(assertOk(await turn2), line2);
    assert.equal(tokenizer.decode(ids.slice(head.length)), reply2);
  });

  test('seeded sampling: the sampler position is carried as well', async () => {
    const reply1 = reply(assertOk(await runs.sampledTurn1), line1);
    const reply2 = reply(assertOk(await sampledTurn2), line2);
    assert.equal(assertOk(await runs.sampledChat), `${reply1}\n${reply2}\n`);
    const rows = readState('sampled-chat.state').rows;
    assert.deepEqual(rows[0].rng, [3, 24], 'seed 3, 12 + 12 draws');
    const greedyChat = assertOk(await runs.chat2);
    assert.notEqual(`${reply1}\n${reply2}\n`, greedyChat, 'sampling is not greedy');
  });

  test('chat --state-out, then a new chat --state-in goes on with the conversation', async () => {
    const three = assertOk(await runs.chat3);
    const two = assertOk(await runs.chat2);
    assert.ok(three.startsWith(two));
    const reply3 = three.slice(two.length);
    assert.match(reply3, /^[^\n]+\n$/);
    assert.equal(assertOk(await resumed), reply3);
  });
});

describe('chat input is taken literally', { concurrency: true }, () => {
  const line = "cost: $& and $' and $$";
  const viaChat = chat(greedy, `${line}\n`);
  const viaGenerate = cli(['generate', ...greedy, '--prompt', line]);
  const template = 'Q: {input}\nA:';
  const viaTemplate = chat([...greedy, '--template', template], `${line}\n`);
  const viaGenerateTemplate = cli([
    'generate',
    ...greedy,
    '--prompt',
    template.replace('{input}', () => line),
  ]);

  test("a line with $& and $' is read as written (default template)", async () => {
    const out = assertOk(await viaGenerate);
    assert.ok(out.startsWith(line));
    assert.equal(assertOk(await viaChat), `${out.slice(line.length)}\n`);
  });

  test('with --template, the line replaces {input} as written', async () => {
    const prompt = `Q: ${line}\nA:`;
    const out = assertOk(await viaGenerateTemplate);
    assert.ok(out.startsWith(prompt));
    assert.equal(assertOk(await viaTemplate), `${out.slice(prompt.length)}\n`);
  });
});

test('chat refuses a model folder without tokenizer.json, and a template without {input}', async () => {
  const tiny = fixture('hf', 'mamba-tiny-0');
  const [noTokenizer, noInput] = await Promise.all([
    chat(['--model', tiny], 'hi\n'),
    chat(['--model', model, '--template', 'Q: A:'], 'hi\n'),
  ]);
  assertOneLineError(noTokenizer, /^mamba-ts: error: chat: .*mamba-tiny-0 has no tokenizer\.json$/);
  assertOneLineError(noInput, /^mamba-ts: error: chat: --template must contain \{input\}$/);
});
