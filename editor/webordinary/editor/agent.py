"""Claude Code through the Agent SDK: one resumable conversation per session, interruptible."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webordinary.contracts.messages import Usage
from webordinary.editor.credentials.client import metered, read_token
from webordinary.editor.credentials.usage import Tokens
from webordinary.editor.planner import tool_path_problem
from webordinary.editor.settings import Config

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

log = logging.getLogger(__name__)

SESSION_NAMESPACE = uuid.UUID("6f1d3c52-8a4e-4c1b-9a57-0e2f4b1d7c90")
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
SYSTEM_APPEND = (
    "You are editing a customer's website on their behalf, from instructions they sent by "
    "email. Work only inside the current working directory (an Astro site). Make the requested "
    "change with the smallest sensible edit, then reply with a short summary for the customer "
    "of what you changed. Uploaded files from the email are under public/uploads/."
)


class Ending(StrEnum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    TIMEOUT = "timeout"
    FAILED = "failed"


@dataclass
class Outcome:
    """How one prompt ended, in the editor's terms."""

    ending: Ending
    summary: str = ""
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    transient: bool = False
    session_id: str | None = None


def preload() -> None:
    """Import the SDK (about a second, mostly its MCP types) off the startup path."""
    import claude_agent_sdk  # noqa: F401


def session_id_for(environment: str, thread_id: str) -> str:
    """Stable per environment and thread, so a restarted pod resumes the same conversation."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{environment}/{thread_id}"))


def usage_from(result: ResultMessage | None) -> Usage:
    if result is None or not result.usage:
        return Usage()
    raw = result.usage
    prompt = sum(int(raw.get(key) or 0) for key in
                 ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return Usage(input_tokens=prompt, output_tokens=int(raw.get("output_tokens") or 0),
                 cost_usd=result.total_cost_usd)


def model_credentials(config: Config) -> dict[str, str]:
    """ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY for the CLI.

    In the split pod the CLI talks to the credential proxy with the pod-local placeholder key;
    the real key exists only in the proxy's container. Without a proxy (tests, local runs of
    the editor alone) the key from the editor's own environment is used.
    """
    settings = config.settings
    if settings.credentials_url:
        if settings.credentials_token_file is None:
            raise ValueError("credentials_url needs credentials_token_file")
        return {"ANTHROPIC_BASE_URL": settings.credentials_url,
                "ANTHROPIC_API_KEY": read_token(settings.credentials_token_file)}
    env: dict[str, str] = {}
    if settings.anthropic_base_url:
        env["ANTHROPIC_BASE_URL"] = settings.anthropic_base_url
    if settings.anthropic_api_key is not None:
        env["ANTHROPIC_API_KEY"] = settings.anthropic_api_key.get_secret_value()
    return env


def confine_hook(worktree: Path) -> Any:
    """A PreToolUse hook refusing any tool path outside the worktree (or inside .git)."""

    async def hook(data: Any, tool_use_id: str | None, context: Any) -> Any:
        problem = tool_path_problem(worktree, dict(data.get("tool_input") or {}),
                                    str(data.get("tool_name") or "") or None)
        if problem is None:
            return {}
        log.warning("refused %s: %s", data.get("tool_name"), problem)
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                       "permissionDecision": "deny",
                                       "permissionDecisionReason": problem}}

    return hook


class Agent:
    """A ClaudeSDKClient bound to one session worktree; `run()` one prompt at a time."""

    def __init__(self, config: Config, thread_id: str, worktree: Path) -> None:
        self.config = config
        self.thread_id = thread_id
        self.worktree = worktree
        self.session_id = session_id_for(config.env.environment, thread_id)
        self._client: ClaudeSDKClient | None = None
        self._stop = asyncio.Event()
        self._reason: Ending | None = None
        self.last_used = time.monotonic()

    def has_transcript(self) -> bool:
        projects = self.config.workspace.claude / "projects"
        return any(projects.glob(f"*/{self.session_id}.jsonl"))

    def options(self) -> ClaudeAgentOptions:
        from claude_agent_sdk import ClaudeAgentOptions, HookMatcher

        settings = self.config.settings
        ws = self.config.workspace
        env = {
            "CLAUDE_CONFIG_DIR": str(ws.claude), "HOME": str(ws.claude), "TMPDIR": str(ws.tmp),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            "WEBORDINARY_GIT_TOKEN": "",
        }
        env.update(model_credentials(self.config))
        if settings.cli_max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(settings.cli_max_retries)
        resume = self.has_transcript()
        return ClaudeAgentOptions(
            cwd=str(self.worktree),
            tools=list(settings.allowed_tools),
            allowed_tools=list(settings.allowed_tools),
            permission_mode="acceptEdits",
            system_prompt={"type": "preset", "preset": "claude_code", "append": SYSTEM_APPEND},
            setting_sources=[],
            model=settings.model,
            env=env,
            resume=self.session_id if resume else None,
            session_id=None if resume else self.session_id,
            cli_path=settings.cli_path,
            hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[confine_hook(self.worktree)])]},
            stderr=lambda line: log.debug("claude: %s", line),
        )

    async def _connected(self) -> ClaudeSDKClient:
        if self._client is None:
            from claude_agent_sdk import ClaudeSDKClient

            client = ClaudeSDKClient(self.options())
            await client.connect()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)

    def interrupt(self, reason: Ending = Ending.INTERRUPTED) -> None:
        """Ask the running prompt to stop; `run()` returns soon after with this reason."""
        if self._reason is None:
            self._reason = reason
        self._stop.set()

    async def run(self, prompt: str, limit: float) -> Outcome:
        """Send one prompt and wait for its end: done, interrupted, timed out or failed."""
        self.last_used = time.monotonic()
        self._stop = asyncio.Event()
        self._reason = None
        before = await self._metered()
        try:
            client = await self._connected()
            await client.query(prompt)
        except Exception as exc:
            await self.close()
            return Outcome(Ending.FAILED, error=f"Claude Code did not start: {exc}",
                           transient=True)
        from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock

        texts: list[str] = []
        final: list[ResultMessage] = []

        async def consume() -> None:
            async for message in client.receive_response():
                if isinstance(message, AssistantMessage):
                    texts.extend(b.text for b in message.content if isinstance(b, TextBlock))
                elif isinstance(message, ResultMessage):
                    final.append(message)

        task = asyncio.create_task(consume())
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, timeout=limit,
                               return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                if self._reason is None:
                    self._reason = Ending.TIMEOUT
                await self._abort(client, task)
        finally:
            stopper.cancel()
        crash = None if task.cancelled() else task.exception()
        if crash is not None:
            await self.close()
        self.last_used = time.monotonic()
        outcome = self._outcome(final[-1] if final else None, texts, crash)
        if before is not None:
            after = await self._metered()
            if after is not None:
                # What the proxy forwarded is what is billed: it replaces the CLI's own count.
                outcome.usage = Usage(input_tokens=after.input - before.input,
                                      output_tokens=after.output - before.output,
                                      cost_usd=outcome.usage.cost_usd)
        return outcome

    async def _metered(self) -> Tokens | None:
        settings = self.config.settings
        if not settings.credentials_url or settings.credentials_token_file is None:
            return None
        try:
            token = read_token(settings.credentials_token_file, wait=0)
        except RuntimeError:
            return None
        return await metered(settings.credentials_url, token)

    async def _abort(self, client: ClaudeSDKClient, task: asyncio.Task[None]) -> None:
        grace = self.config.settings.interrupt_grace_seconds
        try:
            await asyncio.wait_for(client.interrupt(), grace)
        except Exception as exc:
            log.warning("interrupt failed (%s); dropping the Claude Code process", exc)
        await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await self.close()

    def _outcome(self, result: ResultMessage | None, texts: list[str],
                 crash: BaseException | None) -> Outcome:
        usage = usage_from(result)
        said = "\n".join(t.strip() for t in texts if t.strip())
        finished = result is not None and not result.is_error
        if self._reason is not None and not finished:
            return Outcome(self._reason, summary=said, usage=usage, session_id=self.session_id)
        if crash is not None or result is None:
            return Outcome(Ending.FAILED, summary=said, usage=usage, transient=True,
                           error=f"Claude Code stopped unexpectedly: {crash}",
                           session_id=self.session_id)
        if result.is_error:
            status = result.api_error_status
            detail = result.result or "; ".join(result.errors or []) or result.subtype
            transient = status in TRANSIENT_STATUSES or result.terminal_reason == "api_error"
            return Outcome(Ending.FAILED, summary=said, usage=usage, transient=transient,
                           error=f"Claude Code failed ({result.terminal_reason or result.subtype}"
                                 f"{f', HTTP {status}' if status else ''}): {detail}",
                           session_id=result.session_id)
        summary = (result.result or "").strip() or (texts[-1].strip() if texts else "")
        return Outcome(Ending.COMPLETED, summary=summary, usage=usage,
                       session_id=result.session_id)


class Agents:
    """Live conversations, at most `max_agents` CLI processes (least recently used closed)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._agents: OrderedDict[str, Agent] = OrderedDict()

    async def get(self, thread_id: str, worktree: Path) -> Agent:
        agent = self._agents.pop(thread_id, None) or Agent(self.config, thread_id, worktree)
        self._agents[thread_id] = agent
        while len(self._agents) > self.config.settings.max_agents:
            _, oldest = self._agents.popitem(last=False)
            await oldest.close()
        return agent

    async def close(self) -> None:
        agents = list(self._agents.values())
        self._agents.clear()
        await asyncio.gather(*(a.close() for a in agents))
