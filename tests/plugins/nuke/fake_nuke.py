"""A tiny stand-in for Nuke's `nuke` module: just what plugins/nuke uses, recording what it does."""
import types


class Knob:
    def __init__(self, name, label="", *rest):
        self.name, self.label, self.rest = name, label, rest
        self.values = list(rest[0]) if rest and isinstance(rest[0], (list, tuple)) else None
        self.script = rest[0] if rest and isinstance(rest[0], str) else None
        self.val = self.values[0] if self.values else None
        self.tooltip, self.range, self.visible = "", None, True

    def setValue(self, value):
        self.val = value

    def value(self):
        return self.val

    def evaluate(self):  # Nuke evaluates expressions; the stand-in's values have none
        return self.val

    def setTooltip(self, text):
        self.tooltip = text

    def setRange(self, low, high):
        self.range = (low, high)

    def setVisible(self, visible):
        self.visible = visible


class Int_Knob(Knob):
    def value(self):
        return float(self.val or 0)  # Nuke hands back numbers as floats


Double_Knob = Boolean_Knob = Enumeration_Knob = File_Knob = String_Knob = Knob
Tab_Knob = Text_Knob = PyScript_Knob = Knob


class Node:
    def __init__(self, cls, **knobs):
        self.cls, self.inputs, self.knobs_, self.children = cls, {}, {}, []
        self._name, self.pos = cls, (0, 0)
        for name, value in knobs.items():
            self.addKnob(Knob(name))
            self.knobs_[name].setValue(value)
        CREATED.append(self)

    def Class(self):
        return self.cls

    def name(self):
        return self._name

    def setName(self, name):
        self._name = name

    def addKnob(self, knob):
        self.knobs_[knob.name] = knob

    def knob(self, name):
        return self.knobs_.get(name)

    def __getitem__(self, name):
        return self.knobs_[name]

    def input(self, i):
        return self.inputs.get(i)

    def setInput(self, i, node):
        self.inputs[i] = node

    def xpos(self):
        return self.pos[0]

    def ypos(self):
        return self.pos[1]

    def setXYpos(self, x, y):
        self.pos = (x, y)

    def __enter__(self):
        CONTEXT.append(self)
        return self

    def __exit__(self, *exc):
        CONTEXT.pop()


class Menu:
    def __init__(self, name):
        self.name, self.items = name, {}

    def addMenu(self, name):
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name, command):
        self.items[name] = command


class ProgressTask:
    def __init__(self, title):
        self.title, self.progress, self.messages = title, [], []
        TASKS.append(self)

    def setProgress(self, value):
        self.progress.append(value)

    def setMessage(self, text):
        self.messages.append(text)

    def isCancelled(self):
        return False


CREATED, CONTEXT, MESSAGES, MENUS, TASKS = [], [], [], {}, []


def _make(cls):
    def make(**knobs):
        node = Node(cls, **knobs)
        if CONTEXT:
            CONTEXT[-1].children.append(node)
        return node
    return make


def createNode(cls, *args, **kwargs):
    return _make(cls)()


nodes = types.SimpleNamespace(Read=_make("Read"), Input=_make("Input"), Output=_make("Output"),
                              Blur=_make("Blur"))


VIEWS = ["main"]
ROOT = Node("Root", project_directory="")
CREATED.remove(ROOT)
ROOT.setName("/scripts/untitled.nk")


def filename(node):
    """Nuke: the file knob with expressions evaluated and frame tokens kept. The stand-in turns
    one TCL-style expression, [value root.shot], into the root's 'shot' knob."""
    text = node["file"].value()
    shot = ROOT.knob("shot")
    return text.replace("[value root.shot]", shot.value()) if shot is not None else text


def views():
    return list(VIEWS)


def root():
    return ROOT


def menu(name):
    return MENUS.setdefault(name, Menu(name))


def message(text):
    MESSAGES.append(text)


def executeInMainThread(fn, args=(), kwargs=None):
    return fn(*args, **(kwargs or {}))
