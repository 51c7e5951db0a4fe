"""Is a language model's code safe to show as a fix? Code that touches files, processes or the network is not.

A model's suggestion is printed where people copy from, so the guard checks every snippet it
would show (a recommendation's `implementation`, and code spans in its text) and withholds the
unsafe ones, saying why: "unsafe suggestion withheld: it calls os.system".

Python is parsed with `ast` (never run): unsafe are calls into, or imports of, the modules that
reach the file system, processes or the network (`os`, `subprocess`, `shutil`, `socket`,
`requests`, `urllib`, `http`, `ctypes`, ...), dynamic code (`eval`, `exec`, `compile`,
`__import__`, `__builtins__`), `open()` for writing, and path methods that write or delete
(`unlink`, `rmdir`, `write_text`, `rename`, ...). Text that does not parse as Python is checked
as a shell command (`rm -rf`, `curl ... | sh`, `dd`, `mkfs`, ...).

```python
unsafe_reason("import os; os.system('rm -rf ~')")   # 'it calls os.system'
unsafe_reason("model.fc.reset_parameters()")         # None
```
Writes through libraries (`torch.save`, `np.save`, `df.to_csv`) are not flagged: they are common,
deliberate and named in the call; the check is for code that reaches outside the program.
"""

from __future__ import annotations

import ast
import re
import textwrap

__all__ = ["UNSAFE_MODULES", "safe_text", "unsafe_reason"]

#: modules whose import, or any use, is unsafe in a suggestion
UNSAFE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "shutil", "socket", "ssl", "requests", "urllib", "urllib2", "urllib3", "http",
    "httpx", "aiohttp", "ftplib", "smtplib", "telnetlib", "paramiko", "webbrowser", "ctypes", "cffi", "pty",
    "multiprocessing", "importlib", "builtins", "__builtin__", "pickle", "marshal", "shelve", "dill", "pip", "sh",
    "plumbum", "fabric", "boto3",
})
_DYNAMIC = frozenset({"eval", "exec", "compile", "__import__", "execfile"})
#: method names that write, delete or run, whatever object they are called on (`Path(...).unlink()`);
#: names common elsewhere (`list.remove`, `DataFrame.rename`) are left to the module check (`os.remove`)
_PATH_WRITES = frozenset({"unlink", "rmdir", "rmtree", "write_text", "write_bytes", "chmod", "chown", "lchmod",
                          "touch", "symlink_to", "hardlink_to", "link_to", "removedirs", "system", "popen",
                          "create_subprocess_exec", "create_subprocess_shell"})
#: functions of those modules that are unsafe even when only referenced (`run = os.system`)
_REFERENCED = frozenset({"system", "popen", "remove", "unlink", "rmdir", "removedirs", "rmtree", "kill", "run", "call",
                         "Popen", "check_output", "check_call", "urlopen", "urlretrieve", "get", "post", "put",
                         "delete", "request", "socket", "create_connection", "execv", "execve", "execvp", "spawnl",
                         "spawnv", "fork", "move", "copy", "copytree", "load", "loads"})
_DUNDERS = frozenset({"__builtins__", "__import__", "__subclasses__", "__globals__", "__loader__", "__code__"})
_SHELL = re.compile(
    r"(\brm\s+-[a-zA-Z]*[rf]|\brm\s+\S|\bmkfs\b|\bdd\s+if=|\b(curl|wget)\b[^\n|]*\|\s*(ba|z)?sh\b|\b(curl|wget)\s+\S"
    r"|\bchmod\b|\bchown\b|\bsudo\b|:\(\)\s*\{|>\s*/dev/sd|\bshutdown\b|\breboot\b|\bkill(all)?\s+-?\d|\bnc\s+-|"
    r"\bssh\s+\S|\bscp\s+\S|\b(pip3?|conda|mamba|apt(-get)?|brew|npm)\s+install\b|\bsh\s+-c\b|\bbash\s+-c\b|\bpowershell\b|\bdel\s+/[sqf]|\bformat\s+[a-z]:)", re.I)
_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n?(.*?)```|`([^`\n]+)`", re.S)


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(c in mode.value for c in "wax+")
    return True  # a mode computed at run time: cannot tell, so not safe


def _python_reasons(tree: ast.AST) -> tuple[list[str], list[str]]:
    """(reasons from calls and uses, reasons from imports), in source order."""
    uses: list[str] = []
    imports: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [f"it imports {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in UNSAFE_MODULES:
                names = ", ".join(a.name for a in node.names)
                uses.append(f"it imports {names} from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name is None:
                if isinstance(node.func, ast.Attribute) and node.func.attr in _PATH_WRITES:
                    uses.append(f"it calls .{node.func.attr}()")
                continue
            root, last = name.split(".")[0], name.rsplit(".", 1)[-1]
            if root in UNSAFE_MODULES or name in _DYNAMIC:
                uses.append(f"it calls {name}")
            elif name in ("open", "io.open", "codecs.open") and _write_mode(node):
                uses.append("it opens a file for writing")
            elif last in _PATH_WRITES and "." in name:
                uses.append(f"it calls {name}")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if node.attr in _DUNDERS:
                uses.append(f"it reaches {node.attr}")
            elif name is not None and name.split(".")[0] in UNSAFE_MODULES and node.attr in _REFERENCED:
                uses.append(f"it uses {name}")
        elif isinstance(node, ast.Name) and node.id in _DUNDERS:
            uses.append(f"it reaches {node.id}")
    return uses, imports


def unsafe_reason(code: str | None) -> str | None:
    """Why `code` must not be shown as a fix ("it calls os.system"), or None when it is safe to show."""
    if not code or not code.strip():
        return None
    text = textwrap.dedent(code).strip()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        m = _SHELL.search(text)
        if m:
            return f"it runs the shell command {m.group(0).strip()!r}"
        # not Python, not an obvious shell command: check what parses line by line
        for line in text.splitlines():
            try:
                found = _python_reasons(ast.parse(line.strip()))
            except (SyntaxError, ValueError):
                continue
            if found[0] or found[1]:
                return (found[0] or found[1])[0]
        return None
    uses, imports = _python_reasons(tree)
    if uses or imports:
        return (uses or imports)[0]
    # a string handed to something else can still carry a command
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _SHELL.search(node.value)
            if m and re.search(r"\b(rm|mkfs|dd|curl|wget|sudo|shutdown|reboot)\b", m.group(0)):
                return f"it carries the shell command {m.group(0).strip()!r}"
    return None


def _prose(text: str, reasons: list[str]) -> str:
    """Shell commands written in prose, from the command to the end of its clause, replaced by a note."""
    def shell(m: re.Match[str]) -> str:
        if not re.search(r"\b(rm|mkfs|dd|curl|wget|sudo|shutdown|reboot|sh|bash)\b", m.group(0)):
            return m.group(0)
        reasons.append(f"it runs the shell command {m.group(1).strip()!r}")
        return "[unsafe command withheld]"

    return re.sub("(" + _SHELL.pattern + r")(?:(?!\.\s|\n|;).)*", shell, text, flags=re.I)


def safe_text(text: str) -> tuple[str, list[str]]:
    """`text` with unsafe code spans (fenced or inline) and shell commands replaced by a note; and the reasons."""
    reasons: list[str] = []
    parts: list[str] = []
    pos = 0
    for m in _FENCE.finditer(text):
        parts.append(_prose(text[pos:m.start()], reasons))
        code = m.group(1) if m.group(1) is not None else m.group(2)
        why = unsafe_reason(code)
        if why is None:
            parts.append(m.group(0))
        else:
            reasons.append(why)
            parts.append(f"[unsafe code withheld: {why}]")
        pos = m.end()
    parts.append(_prose(text[pos:], reasons))
    return "".join(parts), reasons
