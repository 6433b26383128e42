import { stat, readFile } from 'node:fs/promises';
import { clause, useMount, check, expectBytes, pattern, loadTree } from '../src/harness/index.ts';

const mount = useMount();
const tree = loadTree('basic');

clause(
  'NEG-001',
  async (t) => {
    // ensure() has mounted it within mountTimeoutMs (or the clause failed with the server's stderr)
    const root = await stat(mount.mountpoint);
    check(root.isDirectory(), `the mount root is not a directory (mode ${root.mode.toString(8)})`);
    const f = tree.files.find((x) => x.size > 0 && x.size < 4096)!;
    const st = await stat(mount.path(f.path));
    check(st.size === f.size, `lookup of ${f.path}: size ${st.size}, expected ${f.size}`);
    expectBytes(await readFile(mount.path(f.path)), pattern(f.seed, f.size), `read of ${f.path}`);
    t.note('connection', mount.connection);
  },
  { mount },
);
