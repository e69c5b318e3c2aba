/**
 * Python distributions and pip for the end-to-end tests: a minimal wheel and
 * sdist made with Python's stdlib, and pip run with the machine's own
 * configuration neutralised (E2E-NOTES.md).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const WHEEL = 'tinypkg-0.1.0-py3-none-any.whl';
export const SDIST = 'tinypkg-0.2.0.tar.gz';

/** A minimal wheel (zip: module, METADATA, WHEEL, RECORD) and sdist, made with Python's stdlib. */
export function buildDistributions(dir: string): void {
  execFileSync('python3', ['-c', `
import zipfile, tarfile, io, sys
d = sys.argv[1]
with zipfile.ZipFile(f"{d}/${WHEEL}", "w") as z:
    z.writestr("tinypkg/__init__.py", "VALUE = 'from the gateway test'\\n")
    z.writestr("tinypkg-0.1.0.dist-info/METADATA", "Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 0.1.0\\n")
    z.writestr("tinypkg-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr("tinypkg-0.1.0.dist-info/RECORD", "tinypkg/__init__.py,,\\ntinypkg-0.1.0.dist-info/METADATA,,\\ntinypkg-0.1.0.dist-info/WHEEL,,\\ntinypkg-0.1.0.dist-info/RECORD,,\\n")
with tarfile.open(f"{d}/${SDIST}", "w:gz") as t:
    # An in-tree PEP 517 backend that needs nothing from an index.
    backend = ("import os\\n"
               "def get_requires_for_build_wheel(config_settings=None): return []\\n"
               "def prepare_metadata_for_build_wheel(d, config_settings=None):\\n"
               "    p = os.path.join(d, 'tinypkg-0.2.0.dist-info'); os.makedirs(p)\\n"
               "    open(os.path.join(p, 'METADATA'), 'w').write('Metadata-Version: 2.1\\\\nName: tinypkg\\\\nVersion: 0.2.0\\\\n')\\n"
               "    return 'tinypkg-0.2.0.dist-info'\\n")
    for name, text in [("tinypkg-0.2.0/PKG-INFO", "Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 0.2.0\\n"),
                       ("tinypkg-0.2.0/pyproject.toml", "[build-system]\\nrequires = []\\nbuild-backend = 'backend'\\nbackend-path = ['.']\\n"),
                       ("tinypkg-0.2.0/backend.py", backend),
                       ("tinypkg-0.2.0/tinypkg/__init__.py", "VALUE = 2\\n")]:
        data = text.encode()
        info = tarfile.TarInfo(name); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
`, dir]);
}

/** pip with the machine's configuration neutralised (E2E-NOTES.md). */
export function pip(args: string[], cacheDir: string, extraEnv: Record<string, string> = {}, python = 'python3') {
  const env: Record<string, string | undefined> = { ...process.env, PIP_CONFIG_FILE: '/dev/null', PIP_CACHE_DIR: cacheDir, PIP_NO_INPUT: '1', ...extraEnv };
  // The CA bundles too: requests takes REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) over pip's --cert.
  for (const k of ['PIP_FIND_LINKS', 'PIP_EXTRA_INDEX_URL', 'PIP_INDEX_URL', 'PIP_CONSTRAINT', 'PIP_CERT', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY']) delete env[k];
  Object.assign(env, extraEnv);
  return run(python, ['-m', 'pip', ...args], { env, timeout: 120_000 });
}
