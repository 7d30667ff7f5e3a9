import { describe, expect, it } from 'vitest';
import type { ModelSummary } from '../../src/shared/contract';
import { adapterMadeFor, adaptersFor } from '../../src/renderer/src/library/adapter-fit';

/** A library entry with only the fields the matching reads set. */
function entry(fields: Partial<ModelSummary>): ModelSummary {
  return { id: fields.path ?? 'x', name: 'x', path: 'x', source: 'folder', reference: fields.path ?? 'x', ...fields } as ModelSummary;
}

function adapter(name: string, baseModel?: string): ModelSummary {
  return entry({ id: `/loras/${name}`, name, path: `/loras/${name}`, adapter: { ...(baseModel ? { baseModel } : {}), rank: 4, alpha: 8, targetModules: [] } });
}

describe('adapterMadeFor', () => {
  const folder = entry({ name: 'llama-base', path: '/data/models/llama-base', reference: '/data/models/llama-base' });
  const hub = entry({ name: 'org/Llama-3-8B', path: '/hf/models--org--Llama-3-8B/snapshots/abc', reference: 'org/Llama-3-8B@abc', source: 'hf-cache', repoId: 'org/Llama-3-8B', revision: 'abc' });

  it('matches a folder by its path or its folder name', () => {
    expect(adapterMadeFor('/data/models/llama-base', folder.reference, folder)).toBe(true);
    expect(adapterMadeFor('/data/models/llama-base/', folder.reference, folder)).toBe(true);
    expect(adapterMadeFor('test/fixtures/golden/models/llama-base', folder.reference, folder)).toBe(true);
    expect(adapterMadeFor('C:\\models\\llama-base', folder.reference, folder)).toBe(true);
    expect(adapterMadeFor('meta/llama-base', folder.reference, folder)).toBe(true);
    expect(adapterMadeFor('/data/models/llama-chat', folder.reference, folder)).toBe(false);
    expect(adapterMadeFor('llama-base-v2', folder.reference, folder)).toBe(false);
  });

  it('matches a Hub cache model by its repo id, whatever the case, and not by its name alone', () => {
    expect(adapterMadeFor('org/Llama-3-8B', hub.reference, hub)).toBe(true);
    expect(adapterMadeFor('ORG/llama-3-8b', hub.reference, hub)).toBe(true);
    expect(adapterMadeFor('/hf/models--org--Llama-3-8B/snapshots/abc', hub.reference, hub)).toBe(true);
    expect(adapterMadeFor('other/Llama-3-8B', hub.reference, hub)).toBe(false);
    expect(adapterMadeFor('/models/Llama-3-8B', hub.reference, hub)).toBe(false);
  });

  it('matches a model the library does not list by its own string: a Hub id as an id, a path by path or folder name', () => {
    expect(adapterMadeFor('org/name', 'org/name', undefined)).toBe(true);
    expect(adapterMadeFor('org/name', 'Org/Name@main', undefined)).toBe(true);
    expect(adapterMadeFor('other/name', 'org/name', undefined)).toBe(false);
    expect(adapterMadeFor('/train/llama-base', '/srv/llama-base', undefined)).toBe(true);
    expect(adapterMadeFor('/train/llama-base', '/srv/other', undefined)).toBe(false);
  });

  it('matches nothing without a base model named or a model', () => {
    expect(adapterMadeFor(undefined, folder.reference, folder)).toBe(false);
    expect(adapterMadeFor('  ', folder.reference, folder)).toBe(false);
    expect(adapterMadeFor('org/name', '', undefined)).toBe(false);
  });
});

describe('adaptersFor', () => {
  it('lists the adapters made for the model first, then the others, each in the order given', () => {
    const model = entry({ name: 'llama-base', path: '/m/llama-base', reference: '/m/llama-base' });
    const list = [adapter('a-other', 'org/other'), adapter('b-fit', '/train/llama-base'), adapter('c-none'), adapter('d-fit', 'llama-base')];
    const offered = adaptersFor(list, model.reference, model);
    expect(offered.map((o) => [o.adapter.name, o.madeFor])).toEqual([
      ['b-fit', true],
      ['d-fit', true],
      ['a-other', false],
      ['c-none', false],
    ]);
  });
});
