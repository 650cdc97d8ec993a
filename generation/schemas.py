"""Structured outputs asked of the text model (Pydantic: sent as the response schema)."""

from pydantic import BaseModel, Field


class CharacterDraft(BaseModel):
    name: str = Field(description="Full name, unique in the cast")
    role: str = Field(description="Role in the story, e.g. protagonist, mentor")
    description: str = Field(description="Who they are and what they want, 1-3 sentences")
    appearance: str = Field(description="Visual description for a portrait: face, age, clothes")
    personality: str = Field(description="Temperament and manner of speaking")


class CastPlan(BaseModel):
    characters: list[CharacterDraft]


class SceneDraft(BaseModel):
    title: str
    concise_plot: str = Field(description="One sentence")
    detailed_plot: str = Field(description="A paragraph: what happens, beat by beat")
    dialogue: str = Field(description="Key lines, 'Name: line' per line")
    location: str
    mood: str
    characters: list[str] = Field(description="Names of the cast members present")


class ScenePlan(BaseModel):
    scenes: list[SceneDraft]


class FrameDraft(BaseModel):
    prompt: str = Field(description="Image-to-video prompt: subject, action, setting, light")
    camera: str = Field(description="Shot size and camera movement")
    dialogue: str = Field(description="Line spoken during this shot, or empty")


class FramePlan(BaseModel):
    frames: list[FrameDraft]
