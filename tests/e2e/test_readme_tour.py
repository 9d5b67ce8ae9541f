"""The README's tour, run as written: its signing recipe (openssl + curl) must work."""

import json
import re
import subprocess

from conftest import ROOT, create_app


def test_readme_signing_recipe(server):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- tour:sign -->\s*```sh\n(.*?)```", readme, re.S)
    assert block, "README lost its tour:sign block"
    key, secret, app_id = create_app(server)
    script = (block.group(1).replace("your_api_key", key).replace("your_api_secret", secret)
              .replace("http://127.0.0.1:8080", server.base))
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    decoder, text, docs = json.JSONDecoder(), p.stdout.strip(), []
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    assert docs[0]["id"] == app_id, p.stdout
    assert docs[1]["username"] == "gw-office-1", p.stdout
