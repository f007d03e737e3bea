"""The JSON the API answers with, as pydantic models: they are the OpenAPI docs at /docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Ranked(BaseModel):
    class_: str = Field(alias="class", description="class name")
    index: int = Field(description="class index, 0-9")
    probability: float


class ModelAnswer(BaseModel):
    model: str
    class_: str = Field(alias="class", description="the top class")
    probability: float
    top_k: list[Ranked]


class ImageResult(BaseModel):
    index: int = Field(description="position in the request")
    name: str = Field(description="the upload's file name, or 'image N'")
    source_size: list[int] = Field(description="width, height of the picture as uploaded")
    input: str = Field(description="'pass-through' (already a 28x28 Fashion-MNIST-style image) or 'converted'")
    predictions: list[ModelAnswer] = Field(description="one per model, in the order of GET /v1/models")
    agree: bool = Field(description="every model gives the same top class")
    pixels: list[int] | None = Field(
        None, description="the 28x28 image the models saw, row by row (include_input=true)"
    )


class PredictResponse(BaseModel):
    models: list[str]
    images: list[ImageResult]


class ModelInfo(BaseModel):
    name: str
    engine: str
    run: str
    file: str
    parameters: int | None = Field(description="trainable parameters, counted from the run's config")
    test_accuracy: float | None = Field(description="the run's own test accuracy (fmnist train)")
    class_names: list[str]
    config: dict[str, Any] | None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    limits: dict[str, int]
    test_images: bool = Field(description="whether the test set is loaded (random images, disagreements)")
    note: str | None = Field(description="why the test-set features are off, when they are")


class Health(BaseModel):
    status: str
    models: int


class TestImage(BaseModel):
    index: int
    label: int
    class_: str = Field(alias="class")


class Disagreement(TestImage):
    predictions: list[dict[str, Any]]


class DisagreementsResponse(BaseModel):
    models: list[str]
    images: int = Field(description="test images looked at")
    same_class: int = Field(description="test images on which every model gives the same class")
    accuracy: dict[str, float]
    total: int = Field(description="test images on which the models disagree")
    disagreements: list[Disagreement] = Field(description="the first `limit` of them, by test-set index")


class ErrorResponse(BaseModel):
    error: str = Field(description="what went wrong, in one line")
    code: str = Field(description="a stable name for scripts: empty_upload, not_an_image, upload_too_large, ...")
