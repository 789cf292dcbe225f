import importlib
import inspect

import wsresearch


def test_all_is_sorted_complete_and_importable() -> None:
    names = wsresearch.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(wsresearch, name), name
    exported = {
        name for name, obj in vars(wsresearch).items()
        if not name.startswith("_") and not inspect.ismodule(obj) and name not in {"annotations"}
        and getattr(obj, "__module__", "").startswith("wsresearch")
    }
    assert exported <= set(names), exported - set(names)


def test_every_public_name_is_documented() -> None:
    modules = ["backoff", "clock", "connection", "errors", "feed", "frames", "health", "parser",
               "queue", "sim", "spec", "cli", "console", "exchanges.generic", "exchanges.raw",
               "sequence", "sim_dialects", "exchanges.binance", "exchanges.coinbase",
               "exchanges.kraken", "exchanges.bybit", "exchanges.okx", "recording", "replay",
               "testing", "pytest_plugin", "dedupe", "notebook", "widgets", "export",
               "quality", "proxy", "redaction"]
    for module_name in modules:
        module = importlib.import_module(f"wsresearch.{module_name}")
        assert module.__doc__, module_name
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__ and obj.__doc__.strip(), f"{module_name}.{name}"
                for attr, member in vars(obj).items() if inspect.isclass(obj) else []:
                    if attr.startswith("_") or not (inspect.isfunction(member)
                                                    or isinstance(member, property)):
                        continue
                    assert member.__doc__, f"{module_name}.{name}.{attr}"


def test_import_applies_no_event_loop_patches() -> None:
    import asyncio

    assert not hasattr(asyncio, "_nest_patched")
